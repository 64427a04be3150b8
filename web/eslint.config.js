// ESLint for the page's modules: ESLint's recommended rules and typescript-eslint's type-checked ones, which
// read the TypeScript program of tsconfig.json (JSDoc types, checkJs). Among them: no floating promises, no
// promise handed where a plain callback is expected, no `any` leaking out of JSON.
import { fileURLToPath } from 'node:url';
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig(
  { ignores: ['node_modules/'] },
  {
    files: ['static/js/**/*.js'],
    extends: [js.configs.recommended, tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'module',
      // Not import.meta.dirname: Debian bookworm's node 18 lacks it.
      parserOptions: { projectService: true, tsconfigRootDir: fileURLToPath(new URL('.', import.meta.url)) },
    },
    // Names that exist nowhere are tsc's to find, which knows the browser's (lib "dom"); ESLint would need
    // the list of browser globals repeated here.
    rules: { 'no-undef': 'off' },
  },
  {
    files: ['eslint.config.js'],
    extends: [js.configs.recommended],
    languageOptions: { ecmaVersion: 2022, sourceType: 'module', globals: { URL: 'readonly' } },
  },
);
