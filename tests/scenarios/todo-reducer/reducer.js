import { ADD_TODO, TOGGLE_TODO, REMOVE_TODO } from './actions.js';

let nextId = 1;

export function todos(state = [], action) {
  switch (action.type) {
    case ADD_TODO:
      return [...state, { id: nextId++, text: action.text, done: false }];
    case TOGGLE_TODO:
      return state.map((todo) => (todo.id === action.id ? { ...todo, done: !todo.done } : todo));
    case REMOVE_TODO:
      return state.filter((todo) => todo.id !== action.id);
    default:
      return state;
  }
}
