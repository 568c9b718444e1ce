/**
 * ESLint rule: no function calls itself (directly, by name or as `this.method`).
 * Why: recursion over something a user controls (records, entries, snapshots, blocks, log
 * lines) grows the stack with that count, and one large enough takes the process down with
 * "Maximum call stack size exceeded" (issue 7). Write the walk as a loop with an explicit
 * stack instead. Mutual recursion is not detected; reviews catch that.
 */
function enclosingFunctionName(node) {
  const parent = node.parent;
  if (node.type === "FunctionDeclaration" && node.id) return { name: node.id.name, method: false };
  if (parent?.type === "MethodDefinition" && parent.key.type === "Identifier") return { name: parent.key.name, method: true };
  if (parent?.type === "VariableDeclarator" && parent.id.type === "Identifier") return { name: parent.id.name, method: false };
  if (node.type === "FunctionExpression" && node.id) return { name: node.id.name, method: false };
  return undefined;
}

export default {
  meta: {
    type: "problem",
    docs: { description: "forbid functions that call themselves (unbounded stack growth)" },
    schema: [],
    messages: { recursion: "'{{name}}' calls itself: write it as a loop (a stack growing with user data crashes the process)" },
  },
  create(context) {
    const stack = [];
    const enter = (node) => stack.push(enclosingFunctionName(node));
    const exit = () => stack.pop();
    return {
      FunctionDeclaration: enter,
      "FunctionDeclaration:exit": exit,
      FunctionExpression: enter,
      "FunctionExpression:exit": exit,
      ArrowFunctionExpression: enter,
      "ArrowFunctionExpression:exit": exit,
      CallExpression(node) {
        const current = stack[stack.length - 1];
        if (current === undefined) return;
        const callee = node.callee;
        const direct = !current.method && callee.type === "Identifier" && callee.name === current.name;
        const viaThis =
          current.method &&
          callee.type === "MemberExpression" &&
          callee.object.type === "ThisExpression" &&
          callee.property.type === "Identifier" &&
          callee.property.name === current.name;
        if (direct || viaThis) context.report({ node, messageId: "recursion", data: { name: current.name } });
      },
    };
  },
};
