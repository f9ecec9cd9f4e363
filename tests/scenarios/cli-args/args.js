function parseArgs(argv) {
  const options = { verbose: false, output: 'out.txt', files: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--verbose' || arg === '-v') {
      options.verbose = true;
    } else if (arg === '--output' || arg === '-o') {
      options.output = argv[++i];
    } else {
      options.files.push(arg);
    }
  }
  return options;
}

module.exports = { parseArgs };
