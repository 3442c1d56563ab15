#!/usr/bin/env node
import { prestartGuestWorker } from './host/worker-launch.js';

// `capsa run` needs one guest worker: start it before loading the rest of capsa, so that its ~20 ms
// of booting overlap the loading, the manifest checks and the module's compilation on this thread.
if (process.argv[2] === 'run') prestartGuestWorker();
const { main } = await import('./cli/main.js');
process.exitCode = await main(process.argv.slice(2));
