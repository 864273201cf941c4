import { runSqliteSuite } from './conformance-suite.js';

runSqliteSuite('NORMAL', 'auto');
