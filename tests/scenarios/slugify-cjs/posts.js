const { slugify, truncate } = require('./strings');

function toSummary(post) {
  return {
    slug: slugify(post.title),
    title: post.title,
    excerpt: truncate(post.body, 140),
    url: `/posts/${slugify(post.title)}`,
  };
}

module.exports = { toSummary };
