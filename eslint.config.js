// The linter, configured once: ESLint's and typescript-eslint's recommended rules over every
// TypeScript and JavaScript file of the repository (npm run lint; npm test fails on any finding).
// Formatting is prettier's (.prettierrc.json), not the linter's.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'native/build/', '.cache/', '.kasane-data/'] },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    languageOptions: { globals: globals.node },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // A name that starts with "_" is unused on purpose (a parameter an interface requires).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // `const self = this` names the outer object inside the getters of an object literal.
      '@typescript-eslint/no-this-alias': ['error', { allowedNames: ['self'] }],
      // Tests match the CLI's tables column for column: literal spaces read better than " {2}".
      'no-regex-spaces': 'off',
      // Comments within 120 columns (prettier keeps code there and does not rewrap comments); a long
      // string stays whole, so that a message can be found with grep.
      'max-len': ['error', { code: 120, tabWidth: 2, ignorePattern: '^(?!\\s*(//|/\\*|\\*))', ignoreUrls: true }],
    },
  },
  { files: ['console/**'], languageOptions: { globals: globals.browser } },
);
