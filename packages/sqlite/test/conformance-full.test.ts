import { runSqliteSuite } from './conformance-suite.js';

// FULL with every batch on the writer thread: the thread's path through the whole suite.
runSqliteSuite('FULL', 'always');
