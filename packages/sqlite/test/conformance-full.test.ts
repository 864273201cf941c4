import { runSqliteSuite } from './conformance-suite.js';

runSqliteSuite('FULL');
