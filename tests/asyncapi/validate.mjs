// Validates AsyncAPI documents with the official parser (@asyncapi/parser,
// pinned in package-lock.json):
//   node validate.mjs FILE...
// Prints every diagnostic (severity, path, message) and a count per file;
// exits 1 when any file has an error-severity diagnostic (warnings,
// information and hints are printed but pass), 2 on a usage error.
import { readFile } from 'node:fs/promises';
import { Parser, DiagnosticSeverity } from '@asyncapi/parser';

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: node validate.mjs FILE...');
  process.exit(2);
}

const names = {
  [DiagnosticSeverity.Error]: 'error',
  [DiagnosticSeverity.Warning]: 'warning',
  [DiagnosticSeverity.Information]: 'info',
  [DiagnosticSeverity.Hint]: 'hint',
};

const parser = new Parser();
let failed = false;
for (const file of files) {
  const text = await readFile(file, 'utf8');
  const { document, diagnostics } = await parser.parse(text, { source: file });
  const counts = { error: 0, warning: 0, info: 0, hint: 0 };
  for (const d of diagnostics) {
    const sev = names[d.severity] ?? String(d.severity);
    counts[sev] = (counts[sev] ?? 0) + 1;
    console.log(`${file}: ${sev}: ${d.code}: ${(d.path ?? []).join('.') || '(root)'}: ${d.message}`);
  }
  const ok = document !== undefined && counts.error === 0;
  console.log(`${file}: ${ok ? 'valid' : 'INVALID'} AsyncAPI ${document ? document.version() : '?'}: ` +
              `${counts.error} error(s), ${counts.warning} warning(s), ${counts.info} info, ${counts.hint} hint(s)`);
  if (!ok) failed = true;
}
process.exit(failed ? 1 : 0);
