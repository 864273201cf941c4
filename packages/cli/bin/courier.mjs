#!/usr/bin/env node
// The `courier` command: registers tsx's ESM loader in this process, then runs the TypeScript entry.
import { register } from 'tsx/esm/api';

register();
await import('../src/main.ts');
