#!/usr/bin/env node
// switchyard-js: the command line of @switchyard/sdk.

import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

const USAGE = `Usage: switchyard-js build [DIR] [--out FILE] [--entry FILE] [--quiet]

Builds the connector in DIR (default: the working directory) into a WebAssembly
component for the Switchyard host.

  --out FILE     where to write the component (default: <package name>.wasm in DIR);
                 written to a temporary file first and renamed, so a host watching
                 the folder never loads half a file
  --entry FILE   the connector's module (default: package.json "main", else src/index.js)
  --quiet        print nothing but errors

  switchyard-js --version    the SDK's version
  switchyard-js --help       this text`;

function version() {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  return pkg.version;
}

function parse(argv) {
  const opts = { quiet: false };
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined || v.startsWith('--')) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === '--out' || arg === '-o') opts.out = value();
    else if (arg.startsWith('--out=')) opts.out = arg.slice(6);
    else if (arg === '--entry') opts.entry = value();
    else if (arg.startsWith('--entry=')) opts.entry = arg.slice(8);
    else if (arg === '--quiet' || arg === '-q') opts.quiet = true;
    else if (arg.startsWith('-')) throw new Error(`unknown option ${arg}`);
    else rest.push(arg);
  }
  if (rest.length > 1) throw new Error(`expected at most one folder, got ${rest.join(' ')}`);
  if (rest.length === 1) opts.projectDir = rest[0];
  return opts;
}

function mb(bytes) {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

async function main(argv) {
  const [command, ...args] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    console.log(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (command === '--version' || command === '-V') {
    console.log(version());
    return 0;
  }
  if (command !== 'build') {
    console.error(`switchyard-js: unknown command ${command}\n\n${USAGE}`);
    return 2;
  }
  let opts;
  try {
    opts = parse(args);
  } catch (e) {
    console.error(`switchyard-js: ${e.message}\n\n${USAGE}`);
    return 2;
  }
  const { build, BuildError } = await import('../src/build.js');
  const log = opts.quiet ? () => {} : (line) => console.error(line);
  try {
    const result = await build({ ...opts, log });
    if (!opts.quiet) {
      const shown = relative(process.cwd(), result.outFile) || result.outFile;
      const m = result.manifest;
      console.log(
        `built ${shown} (${mb(result.size)}) in ${(result.durationMs / 1000).toFixed(1)} s: ${m.name} ${m.version}`,
      );
    }
    return 0;
  } catch (e) {
    if (e instanceof BuildError) {
      console.error(`switchyard-js: error: ${e.message}`);
      return 1;
    }
    throw e;
  }
}

process.exitCode = await main(process.argv.slice(2));
