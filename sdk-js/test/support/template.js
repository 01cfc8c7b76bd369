// Renders sdk-js/template/ the way `switchyard new connector NAME --lang js` does
// (host/src/scaffold.rs): plain `{{placeholder}}` replacement, `*.tmpl` → the file without
// the suffix, `gitignore.tmpl` → `.gitignore`.

import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';

import { SDK_ROOT } from '../../src/build.js';

export const TEMPLATE_DIR = join(SDK_ROOT, 'template');

async function files(dir) {
  const out = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await files(path)));
    else out.push(path);
  }
  return out;
}

/** `my-hook` → `MY_HOOK`. */
export function envName(name) {
  return name.toUpperCase().replace(/[^A-Z0-9]/g, '_');
}

/** Renders the template for `name` into `dir`; returns the relative paths written. */
export async function renderTemplate(dir, name, sdkDependency = `file:${SDK_ROOT}`) {
  const values = { name, env_name: envName(name), sdk_dependency: JSON.stringify(sdkDependency) };
  const written = [];
  for (const file of await files(TEMPLATE_DIR)) {
    let rel = relative(TEMPLATE_DIR, file).replace(/\.tmpl$/, '');
    if (rel === 'gitignore') rel = '.gitignore';
    const text = (await readFile(file, 'utf8')).replace(/\{\{(\w+)\}\}/g, (m, key) => {
      if (!(key in values)) throw new Error(`${file}: unknown placeholder ${m}`);
      return values[key];
    });
    await mkdir(dirname(join(dir, rel)), { recursive: true });
    await writeFile(join(dir, rel), text);
    written.push(rel);
  }
  return written.sort();
}
