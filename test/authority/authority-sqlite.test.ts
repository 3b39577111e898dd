// The authority's end-to-end scenarios on SQLite (the embedded default).
import { authorityScenarios } from './helpers/scenarios.js';

authorityScenarios({ kind: 'sqlite', database: async () => undefined });
