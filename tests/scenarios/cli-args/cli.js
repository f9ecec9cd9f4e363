#!/usr/bin/env node
const { parseArgs } = require('./args');

const options = parseArgs(process.argv.slice(2));
if (options.verbose) {
  console.log(`writing ${options.files.length} files to ${options.output}`);
}
