export class Logger {
  constructor(name, level = 'info') {
    this.name = name;
    this.level = level;
  }

  info(message, ...args) {
    this.write('info', message, args);
  }

  warn(message, ...args) {
    this.write('warn', message, args);
  }

  error(message, ...args) {
    this.write('error', message, args);
  }

  write(level, message, args) {
    console.log(`[${level}] ${this.name}: ${message}`, ...args);
  }
}
