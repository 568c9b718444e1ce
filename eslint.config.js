// Lint rules for the whole tree (npm run lint, part of npm test).
import js from "@eslint/js";
import globals from "globals";
import tseslint from "typescript-eslint";
import noRecursion from "./tools/eslint/no-recursion.js";

/** Issue 7: nothing whose stack use grows with a count users control. */
const unboundedStack = [
  {
    selector: "CallExpression > SpreadElement",
    message: "no spread into a call: the arguments go on the stack, and an array users can grow overflows it. Loop, or pass the array.",
  },
  { selector: "NewExpression > SpreadElement", message: "no spread into a constructor call (see CallExpression > SpreadElement)." },
  {
    selector: "CallExpression[callee.property.name='apply'][arguments.length=2]",
    message: "no fn.apply(this, array): the array goes on the stack like a spread.",
  },
];

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", "snaplog-data/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: globals.node },
    rules: {
      // Underscore names are deliberately unused (destructuring to drop a field, a required parameter).
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", ignoreRestSiblings: true }],
    },
  },
  {
    // The dashboard runs in the browser.
    files: ["src/dashboard/**/*.ts"],
    languageOptions: { globals: globals.browser },
  },
  {
    // The product and the tools that run it at scale; tests spread short fixed argument lists.
    files: ["src/**/*.ts", "sim/**/*.ts", "bench/**/*.ts", "scripts/**/*.ts"],
    plugins: { snaplog: { rules: { "no-recursion": noRecursion } } },
    rules: {
      "no-restricted-syntax": ["error", ...unboundedStack],
      "snaplog/no-recursion": "error",
    },
  },
);
