// Declarations of @switchyard/sdk/build (what `switchyard-js build` runs).

import type { Connector } from './index.js';

export declare const SDK_ROOT: string;
export declare const WIT_PATH: string;
export declare const WIT_PACKAGE: 'switchyard:connector@0.1.1';
export declare const WORLD: 'connector';
export declare const DISABLED_FEATURES: readonly string[];

/** A build error meant for the user. */
export declare class BuildError extends Error {}

export interface BuildOptions {
  /** Default: the working directory. */
  projectDir?: string;
  /** Default: package.json "main", else src/index.js. */
  entry?: string;
  /** Default: `<package name>.wasm` in the project folder. */
  out?: string;
  /** Progress lines. */
  log?: (line: string) => void;
}

export interface BuildResult {
  outFile: string;
  size: number;
  durationMs: number;
  manifest: Connector['manifest'];
  imports: string[];
}

/** Builds the connector into a component, written atomically. */
export declare function build(options?: BuildOptions): Promise<BuildResult>;
