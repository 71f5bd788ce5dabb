// Unit tests of web/core.js (pure helpers), run with plain Node.
'use strict';
const assert = require('assert');
const path = require('path');
// web_test.sh loads kmrd's generated verdicts.js as KMR.verdicts first, as the page does.
const verdicts = globalThis.KMR && globalThis.KMR.verdicts;
if (!verdicts) throw new Error('run through web_test.sh (KMR.verdicts, the generated rule, is not loaded)');
const core = require(path.join(__dirname, 'core.js'));
let n = 0;
function test(name, fn) { fn(); n++; }

test('parseHashQuery', () => {
  const hex = 'A'.repeat(64);
  assert.strictEqual(core.parseHashQuery(hex), 'a'.repeat(64));
  assert.strictEqual(core.parseHashQuery('  sha256:' + hex + ' '), 'a'.repeat(64));
  assert.strictEqual(core.parseHashQuery('sha256-' + 'b'.repeat(64)), 'b'.repeat(64));
  assert.strictEqual(core.parseHashQuery('a'.repeat(63)), null);
  assert.strictEqual(core.parseHashQuery('g'.repeat(64)), null);
  assert.strictEqual(core.parseHashQuery('linux 6.1'), null);
  assert.strictEqual(core.parseHashQuery(null), null);
});

test('verdict classes and explanations', () => {
  assert.strictEqual(core.verdictClass('files', 'identical'), 'good');
  assert.strictEqual(core.verdictClass('files', 'different'), 'bad');
  assert.strictEqual(core.verdictClass('files', 'build-failed'), 'warn');
  assert.strictEqual(core.verdictClass('files', null), 'pending');
  assert.strictEqual(core.verdictClass('module_root', 'match'), 'good');
  assert.strictEqual(core.verdictClass('module_root', 'absent'), 'na');
  assert.strictEqual(core.verdictClass('module_root', 'invalid'), 'bad');
  assert.match(core.explain('module_root', 'mismatch'), /different Merkle root/);
  assert.match(core.explain('files', undefined), /Not verified yet/);
  assert.match(core.explain('files', 'weird'), /"weird"/);
  assert.ok(core.isReproducible({ files: 'identical-modulo-signatures', module_root: 'match' }));
  assert.ok(!core.isReproducible({ files: 'identical', module_root: 'mismatch' }));
  assert.ok(!core.isReproducible({ files: 'identical', module_root: 'match', reproducible: false }));
  assert.strictEqual(core.filesVerdict({ status: 'build-failed', files: null }), 'build-failed');
  assert.strictEqual(core.filesVerdict({ status: 'verified', files: 'different' }), 'different');
  assert.strictEqual(core.filesVerdict(null), null);
  assert.strictEqual(core.filesVerdict({ status: 'pending' }), null);
});

test('the vocabulary and the rule are the generated ones', () => {
  assert.strictEqual(core.FILES_TIERS, verdicts.FILES_TIERS);
  assert.strictEqual(core.MODULE_ROOT, verdicts.MODULE_ROOTS);
  assert.strictEqual(core.CONTENT_ROOT, verdicts.CONTENT_ROOTS);
  assert.deepStrictEqual([...core.GOOD_FILES], [...verdicts.GOOD_FILES_TIERS]);
  assert.ok(core.FILES_TIERS.includes('identical-modulo-signatures'));
  // identical modulo signatures, module root fine, but the modules' content differs: not reproducible
  assert.ok(!core.isReproducible({ files: 'identical-modulo-signatures', module_root: 'absent', module_content_root: 'mismatch' }));
  assert.ok(!core.isReproducible({ files: 'identical', module_root: 'match', module_content_root: 'mismatch' }));
  assert.ok(core.isReproducible({ files: 'identical-modulo-signatures', module_root: 'absent', module_content_root: 'match' }));
  assert.ok(core.isReproducible({ files: 'content-identical', module_root: null, module_content_root: null }));
  // kmrd's own answer wins (it may have downgraded the verdict)
  assert.ok(!core.isReproducible({ files: 'identical', module_root: 'match', module_content_root: 'match', reproducible: false }));
  assert.strictEqual(core.verdictClass('module_content_root', 'match'), 'good');
  assert.strictEqual(core.verdictClass('module_content_root', 'mismatch'), 'bad');
  assert.match(core.explain('module_content_root', 'mismatch'), /signatures removed/);
});

test('signature summary', () => {
  const ok = core.signatureSummary({ checked: true, signed: 4023, verified: 4023, ok: true, failed: [], note: '' });
  assert.strictEqual(ok.cls, 'ok');
  assert.strictEqual(ok.text, '4023 of 4023 shipped module signatures verified against the certificates built into the shipped kernel.');
  const bad = core.signatureSummary({ checked: true, signed: 3, verified: 2, ok: false,
    failed: [{ module: 'e1000e.ko', reason: 'bad signature' }], note: '1 of 3 shipped module signatures do not verify' });
  assert.strictEqual(bad.cls, 'bad');
  assert.match(bad.text, /^2 of 3 shipped module signatures verified .*; 1 did not\.$/);
  // ok is not enough when some signature was not verified
  assert.strictEqual(core.signatureSummary({ checked: true, signed: 2, verified: 1, ok: true }).cls, 'bad');
  assert.strictEqual(core.signatureSummary({ checked: false, signed: 0, verified: 0, ok: false, note: '' }).cls, 'muted');
  const none = core.signatureSummary({ checked: true, signed: 0, verified: 0, ok: true, note: 'no shipped module carries a PKCS#7 signature' });
  assert.strictEqual(none.text, 'no shipped module carries a PKCS#7 signature.');
  assert.strictEqual(core.signatureSummary(null).cls, 'muted');
});

test('percent and bytes', () => {
  assert.strictEqual(core.percent(1, 3), '33.3%');
  assert.strictEqual(core.percent(0, 0), '0%');
  assert.strictEqual(core.percent(1, 100000), '<0.1%');
  assert.strictEqual(core.formatBytes(512), '512 B');
  assert.strictEqual(core.formatBytes(1536), '1.5 KiB');
});

test('hexRuns marks differing digits', () => {
  const r = core.hexRuns('aabbcc', 'aaXbcc');
  assert.deepStrictEqual(r.map((x) => [x.same, x.a, x.b]), [[true, 'aa', 'aa'], [false, 'b', 'X'], [true, 'bcc', 'bcc']]);
  assert.deepStrictEqual(core.hexRuns('ab', 'ab').length, 1);
});

// diffoscope's own example shape (anchors.md B.2) plus kmr's status/kind fields
const tree = {
  'diffoscope-json-version': 1, source1: 'a.deb', source2: 'b.deb', unified_diff: null, details: [
    { source1: 'data.tar.xz', source2: 'data.tar.zst', comments: ['Files identical despite different names'], unified_diff: null, details: [
      { source1: 'filetype from diffoscope', source2: 'filetype from diffoscope', unified_diff: '@@ -1 +1 @@\n-XzFile\n+ZstFile\n' },
      { source1: 'data.tar', source2: 'data.tar', unified_diff: null, details: [
        { source1: './lib/modules/6.1.0/kernel/drivers/a.ko.zst', source2: './lib/modules/6.1.0/kernel/drivers/a.ko.zst', unified_diff: null, details: [
          { source1: 'a.ko', source2: 'a.ko', unified_diff: null, details: [
            { source1: 'readelf --wide --decompress --hex-dump=.rodata {}', source2: 'readelf --wide --decompress --hex-dump=.rodata {}',
              unified_diff: '@@ -1,4 +1,4 @@\n \n Hex dump\n-  A\n+  B\n' }] }] },
        { source1: './boot/vmlinuz', source2: './boot/vmlinuz', status: 'identical', kind: 'file' }] }] }] };

test('differingMembers finds the deepest differing members with paths', () => {
  const s = core.differingMembers(tree);
  assert.strictEqual(s.truncated, false);
  const paths = s.members.map((m) => m.path.join(' > '));
  assert.deepStrictEqual(paths, [
    'data.tar.xz \u2192 data.tar.zst > data.tar > ./lib/modules/6.1.0/kernel/drivers/a.ko.zst > a.ko',
  ]);
  assert.strictEqual(s.members[0].id, '0.1.0.0');
  assert.strictEqual(core.countNodes(tree), 8);
});

test('kmr diff JSON: members carry sha256, views do not', () => {
  // shape of rebuilder/compare/presenters.cc output
  const t = { 'diffoscope-json-version': 1, source1: 'linux-6.1-1.pkg.tar.zst', source2: 'linux-6.1-1.pkg.tar.zst', unified_diff: null,
    kind: 'zstd', status: 'changed', sha256: { source1: 'a'.repeat(64), source2: 'b'.repeat(64) }, details: [
      { source1: 'linux-6.1-1.pkg.tar', source2: 'linux-6.1-1.pkg.tar', unified_diff: null, kind: 'tar', status: 'changed',
        sha256: { source1: 'c'.repeat(64), source2: 'd'.repeat(64) }, details: [
          { source1: 'file list', source2: 'file list', unified_diff: '@@ -1 +1 @@\n-a\n+b\n', kind: 'file-list', status: 'changed' },
          { source1: 'usr/lib/modules/6.1/kernel/fs/x.ko.zst', source2: 'usr/lib/modules/6.1/kernel/fs/x.ko.zst', unified_diff: null,
            kind: 'zstd', status: 'changed', sha256: { source1: 'e'.repeat(64), source2: 'f'.repeat(64) }, details: [
              { source1: 'x.ko', source2: 'x.ko', unified_diff: null, kind: 'kernel-module', status: 'changed',
                sha256: { source1: '1'.repeat(64), source2: '2'.repeat(64) }, details: [
                  { source1: 'symbols', source2: 'symbols', unified_diff: '@@ -1 +1 @@\n-x\n+y\n', kind: 'elf-symbols', status: 'changed' },
                  { source1: 'section .rodata', source2: 'section .rodata', kind: 'elf-section', status: 'changed',
                    sha256: { source1: '4'.repeat(64), source2: '5'.repeat(64) }, unified_diff: '-a\n+b\n' },
                  { source1: 'module signature trailer', source2: 'module signature trailer', unified_diff: '-a\n+b\n', kind: 'module-trailer', status: 'changed' }] }] },
          { source1: '/dev/null', source2: 'usr/lib/modules/6.1/kernel/new.ko.zst', unified_diff: null, kind: 'file', status: 'added',
            comments: ['Only in second'],
            sha256: { source1: null, source2: '3'.repeat(64) } }] }] };
  const s = core.differingMembers(t);
  assert.deepStrictEqual(s.members.map((m) => [m.id, m.status, m.path[m.path.length - 1]]), [
    ['0.1.0', 'changed', 'x.ko'], ['0.2', 'added', 'usr/lib/modules/6.1/kernel/new.ko.zst']]);
});

test('differingMembers uses kind/status when present', () => {
  const t = { source1: 'x', source2: 'y', status: 'changed', kind: 'archive', details: [
    { source1: 'm/added.ko', source2: null, status: 'added', kind: 'file' },
    { source1: 'm/same.ko', source2: 'm/same.ko', status: 'identical', kind: 'file' },
    { source1: 'm/c.ko', source2: 'm/c.ko', status: 'changed', kind: 'file', details: [
      { source1: 'sha256', source2: 'sha256', kind: 'meta', status: 'changed', unified_diff: '-a\n+b\n' }] }] };
  const s = core.differingMembers(t);
  assert.deepStrictEqual(s.members.map((m) => [m.id, m.status]), [['0', 'added'], ['2', 'changed']]);
  assert.strictEqual(core.differingMembers(t, 1).truncated, true);
  assert.deepStrictEqual(core.differingMembers({ source1: 'a', source2: 'a', status: 'identical' }).members, []);
  assert.deepStrictEqual(core.differingMembers(null).members, []);
});

test('diffLines classes', () => {
  assert.deepStrictEqual(core.diffLines('@@ -1 +1 @@\n-a\n+b\n c\n').map((l) => l.cls), ['hunk', 'del', 'add', 'ctx']);
  assert.deepStrictEqual(core.diffLines(null), []);
});

test('content range and head/tail', () => {
  assert.deepStrictEqual(core.parseContentRange('bytes 0-65535/1000000'), { start: 0, end: 65535, total: 1000000 });
  assert.strictEqual(core.parseContentRange('bytes */100'), null);
  assert.strictEqual(core.parseContentRange('bytes 0-1/*').total, null);
  const ht = core.headTail('0123456789', 3, 2);
  assert.deepStrictEqual(ht, { head: '012', tail: '89', omitted: 5 });
  assert.strictEqual(core.headTail('abc', 3, 2).omitted, 0);
});

test('query command is shell-safe', () => {
  const hex = 'c'.repeat(64);
  assert.strictEqual(core.queryCommand('http://127.0.0.1:8080', hex, 'rebuilder.pem'),
    'kmr query --rebuilder http://127.0.0.1:8080 --key rebuilder.pem sha256:' + hex);
  assert.strictEqual(core.shellQuote("it's"), "'it'\\''s'");
});

test('routes round-trip', () => {
  assert.deepStrictEqual(core.parseRoute(''), { view: 'overview', arg: null, params: {} });
  const r = core.parseRoute('#/packages?distro=arch&q=linux%206.1&cursor=abc%3D');
  assert.strictEqual(r.view, 'packages');
  assert.deepStrictEqual(r.params, { distro: 'arch', q: 'linux 6.1', cursor: 'abc=' });
  const s = core.buildRoute('packages', null, { distro: 'arch', verdict: '', q: 'a b' });
  assert.strictEqual(s, '#/packages?distro=arch&q=a%20b');
  assert.deepStrictEqual(core.parseRoute(s).params, { distro: 'arch', q: 'a b' });
  assert.strictEqual(core.parseRoute('#/artifact/' + 'd'.repeat(64)).arg, 'd'.repeat(64));
});

// RFC 6962 inclusion proofs, checked against node's own SHA-256 and the
// verified vector MTH(["a","b"]) from the attestations spec.
const crypto = require('crypto');
const sha = async (b) => new Uint8Array(crypto.createHash('sha256').update(b).digest());
const enc = (s) => new Uint8Array(Buffer.from(s));
async function mth(leaves) {
  if (leaves.length === 1) return core.leafHash(sha, leaves[0]);
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return sha(core.concatBytes([new Uint8Array([1]), await mth(leaves.slice(0, k)), await mth(leaves.slice(k))]));
}
async function auditPath(m, leaves) { // RFC 6962 PATH(m, D[n])
  if (leaves.length === 1) return [];
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  if (m < k) return (await auditPath(m, leaves.slice(0, k))).concat([await mth(leaves.slice(k))]);
  return (await auditPath(m - k, leaves.slice(k))).concat([await mth(leaves.slice(0, k))]);
}
async function asyncTests() {
  const ab = await mth([enc('a'), enc('b')]);
  assert.strictEqual(core.toHex(ab), 'b137985ff484fb600db93107c77b0365c80d78f5b429ded0fd97361d077999eb');
  assert.strictEqual(core.toHex(await core.leafHash(sha, enc(''))), '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d');
  for (const size of [1, 2, 3, 5, 7, 8, 13]) {
    const leaves = Array.from({ length: size }, (_, i) => enc('entry ' + i));
    const root = await mth(leaves);
    for (let i = 0; i < size; i++) {
      const proof = await auditPath(i, leaves);
      const leaf = await core.leafHash(sha, leaves[i]);
      assert.ok(await core.verifyInclusion(sha, leaf, i, size, proof, root), `inclusion ${i}/${size}`);
      // wrong index, wrong leaf, truncated proof, extra hash: all rejected
      if (size > 1) {
        assert.ok(!(await core.verifyInclusion(sha, leaf, (i + 1) % size, size, proof, root)), `wrong index ${i}/${size}`);
        assert.ok(!(await core.verifyInclusion(sha, await core.leafHash(sha, enc('x')), i, size, proof, root)), 'wrong leaf');
        assert.ok(!(await core.verifyInclusion(sha, leaf, i, size, proof.slice(1), root)), 'truncated proof');
      }
      assert.ok(!(await core.verifyInclusion(sha, leaf, i, size, proof.concat([leaf]), root)), 'extra hash');
    }
  }
  assert.ok(!(await core.verifyInclusion(sha, ab, 2, 2, [], ab)), 'index >= size');
  n++;
  const cp = core.parseCheckpoint('example.com/log\n2\n' + Buffer.from(ab).toString('base64') + '\n\n\u2014 example.com/log AAAA\n');
  assert.strictEqual(cp.size, 2);
  assert.strictEqual(core.toHex(cp.root), core.toHex(ab));
  assert.strictEqual(core.parseCheckpoint('x\n02\nAAAA\n'), null);
  assert.strictEqual(core.toHex(core.bytesFromHexOrBase64('b137985ff484fb600db93107c77b0365c80d78f5b429ded0fd97361d077999eb')), core.toHex(ab));
  n++;
}

asyncTests().then(() => console.log('core_test: ' + n + ' tests passed'), (e) => { console.error(e); process.exit(1); });
