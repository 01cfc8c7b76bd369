// Source lines for stack traces in the component. The build bundles the connector into one
// module, so the engine's stack traces name `<bundle>.js:LINE:COLUMN`; the build appends a
// table from each bundle line to its source (from esbuild's source map), and the guest
// rewrites the frames of an uncaught exception with it before logging them.

export const LINES_KEY = Symbol.for('switchyard.sourceLines');

const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Decodes a source map's `mappings`: per generated line, `[genCol, src, srcLine, srcCol]`s. */
export function decodeMappings(mappings) {
  const lines = [];
  let src = 0;
  let srcLine = 0;
  let srcCol = 0;
  for (const line of mappings.split(';')) {
    const segments = [];
    let genCol = 0;
    for (const segment of line.split(',')) {
      if (segment === '') continue;
      const values = [];
      let value = 0;
      let shift = 0;
      for (const ch of segment) {
        const digit = BASE64.indexOf(ch);
        value += (digit & 31) << shift;
        if (digit & 32) {
          shift += 5;
        } else {
          values.push(value & 1 ? -(value >>> 1) : value >>> 1);
          value = 0;
          shift = 0;
        }
      }
      genCol += values[0];
      if (values.length >= 4) {
        src += values[1];
        srcLine += values[2];
        srcCol += values[3];
        segments.push([genCol, src, srcLine, srcCol]);
      }
    }
    lines.push(segments);
  }
  return lines;
}

/**
 * The table the guest reads: for each bundle line (1-based), the source file, its line and
 * the column shift of the line's first mapping. `sources` are the names to show.
 */
export function lineTable(bundleName, map, showSource) {
  const decoded = decodeMappings(map.mappings);
  const files = map.sources.map(showSource);
  const lines = decoded.map((segments) => {
    if (segments.length === 0) return '';
    const [genCol, src, srcLine, srcCol] = segments[0];
    return `${src},${srcLine + 1},${srcCol - genCol}`;
  });
  return { bundle: bundleName, files, lines: lines.join(';') };
}

/** The statement the build appends to the bundle. */
export function lineTableStatement(table) {
  return `\nglobalThis[Symbol.for('switchyard.sourceLines')] = ${JSON.stringify(table)};\n`;
}

let parsed;

/** `file:line:column` in the bundle → the source's, when the table knows it. */
function mapPosition(table, line, column) {
  if (parsed === undefined) parsed = table.lines.split(';');
  const entry = parsed[line - 1];
  if (!entry) return undefined;
  const [src, srcLine, shift] = entry.split(',').map(Number);
  return { file: table.files[src], line: srcLine, column: Math.max(1, column + shift) };
}

/**
 * A stack trace with the bundle's positions replaced by the sources', and the frames of the
 * SDK's glue at its bottom dropped.
 */
export function mapStack(stack, isGlue = () => false) {
  const table = globalThis[LINES_KEY];
  const frames = String(stack).split('\n').filter((l) => l.trim() !== '');
  const mapped = frames.map((frame) => {
    if (!table) return { frame, file: undefined };
    let file;
    const text = frame.replace(/(^|[@(\s])([^@()\s]*?)([^@()\s/]+):(\d+):(\d+)(?=\)?$)/, (m, lead, dir, name, line, column) => {
      if (name !== table.bundle) return m;
      const at = mapPosition(table, Number(line), Number(column));
      if (!at) return m;
      file = at.file;
      return `${lead}${at.file}:${at.line}:${at.column}`;
    });
    return { frame: text, file };
  });
  while (mapped.length > 0 && isGlue(mapped[mapped.length - 1])) mapped.pop();
  return mapped.map((m) => m.frame).join('\n');
}
