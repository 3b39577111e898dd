// Whether the running node is one of the Node.js lines kasane supports (package.json "engines",
// a list of `^MAJOR.MINOR.PATCH` ranges joined by `||`). Kept to old syntax: it must run on the
// outdated node it is there to refuse.
//
//   node scripts/supported-node.mjs            exit 0 if supported; else exit 1 and say what to install
//   node scripts/supported-node.mjs --lines    print the supported major lines, oldest first ("22 24 26")
//   node scripts/supported-node.mjs --newest   print the newest supported major line ("26")
import { readFileSync } from 'node:fs';

var pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
var ranges = String(pkg.engines && pkg.engines.node)
  .split('||')
  .map(function (r) {
    var m = /^\s*\^(\d+)\.(\d+)\.(\d+)\s*$/.exec(r);
    if (!m) throw new Error('package.json engines.node: expected ^X.Y.Z ranges joined by ||, got "' + r.trim() + '"');
    return [Number(m[1]), Number(m[2]), Number(m[3])];
  });
var lines = ranges.map(function (r) {
  return r[0];
});

var arg = process.argv[2];
if (arg === '--lines') {
  console.log(lines.join(' '));
} else if (arg === '--newest') {
  console.log(String(Math.max.apply(null, lines)));
} else {
  var v = process.versions.node.split('.').map(Number);
  var ok = ranges.some(function (r) {
    return v[0] === r[0] && (v[1] > r[1] || (v[1] === r[1] && v[2] >= r[2]));
  });
  if (!ok) {
    var wanted = ranges.map(function (r) {
      return r[1] || r[2] ? r[0] + ' (' + r.join('.') + ' or later)' : String(r[0]);
    });
    console.error(
      'kasane: Node.js ' +
        process.version +
        ' is not supported; install a Node.js LTS line: ' +
        wanted.join(', ') +
        '.',
    );
    process.exit(1);
  }
}
