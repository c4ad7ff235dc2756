// Custos window, end to end, over WebDriver (tauri-driver on 127.0.0.1:4444).
// Usage (run.sh does this): node suite.mjs --phase main|idle --app BIN --vault PATH --passphrase P
//                            --screenshots DIR --results FILE
// Prints one line per step; writes {passed, failed, skipped} to the results file.
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { remote } from 'webdriverio';

const { values: opt } = parseArgs({
  options: {
    phase: { type: 'string', default: 'main' },
    app: { type: 'string' },
    vault: { type: 'string' },
    passphrase: { type: 'string' },
    screenshots: { type: 'string' },
    results: { type: 'string' },
    out: { type: 'string' },
  },
});
for (const k of ['app', 'vault', 'passphrase', 'screenshots', 'results', 'out']) {
  if (!opt[k]) {
    console.error(`suite.mjs: --${k} is required`);
    process.exit(2);
  }
}

const WRONG = 'not the right passphrase at all 42';
const KEY = 'payments-db';
const BANNER = 'TEST VAULT — insecure key derivation, not for real keys';

const results = { passed: 0, failed: 0, skipped: 0 };
let stopped = false;
let browser;

function assert(cond, message) {
  if (!cond) throw new Error(message);
}
function assertEq(actual, expected, what) {
  if (actual !== expected) throw new Error(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}

async function step(name, fn) {
  if (stopped) {
    results.skipped++;
    console.log(`SKIP ${name}`);
    return;
  }
  const t0 = Date.now();
  try {
    await fn();
    results.passed++;
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (err) {
    results.failed++;
    stopped = true; // the flow is sequential: later steps depend on this one
    console.log(`FAIL ${name}: ${err?.message ?? err}`);
    if (browser) {
      try {
        mkdirSync(opt.out, { recursive: true });
        const file = join(opt.out, `failure-${opt.phase}-${results.passed + results.failed}.png`);
        await browser.saveScreenshot(file);
        console.log(`     screenshot of the failure: ${file}`);
      } catch {
        // no screenshot possible (session gone)
      }
    }
  }
}

const $ = (sel) => browser.$(sel);
const byTest = (id) => browser.$(`[data-testid="${id}"]`);

async function shown(sel, timeout = 10000) {
  const el = typeof sel === 'string' ? await $(sel) : sel;
  await el.waitForDisplayed({ timeout, timeoutMsg: `${sel.selector ?? sel} not displayed after ${timeout} ms` });
  return el;
}
async function text(sel) {
  return (await (await shown(sel)).getText()).trim();
}
async function waitText(sel, expected, timeout = 10000) {
  await browser.waitUntil(
    async () => {
      const el = typeof sel === 'string' ? await $(sel) : sel;
      return (await el.isDisplayed()) && (await el.getText()).trim().includes(expected);
    },
    { timeout, timeoutMsg: `${sel.selector ?? sel} never showed ${JSON.stringify(expected)}` },
  );
}
async function click(sel) {
  const el = await shown(sel);
  await el.waitForEnabled({ timeout: 10000 });
  await el.click();
}
async function fill(sel, value) {
  const el = await shown(sel);
  await el.clearValue();
  await el.setValue(value);
}
async function snap(name) {
  mkdirSync(opt.screenshots, { recursive: true });
  await browser.pause(250); // let transitions settle
  await browser.saveScreenshot(join(opt.screenshots, name));
}
async function bannerShown() {
  await waitText('#test-vault-banner', BANNER);
}

async function mainPhase() {
  await step('create-vault screen opens for a new vault path', async () => {
    await shown('#create-vault');
    assertEq(await browser.getTitle(), 'Custos', 'window title');
    assert(!(await (await $('#test-vault-banner')).isExisting()), 'banner shown before the test KDF was chosen');
  });

  await step('the content security policy blocks non-local resources and eval', async () => {
    const outcome = await browser.executeAsync((done) => {
      const violations = [];
      document.addEventListener('securitypolicyviolation', (e) => violations.push(e.violatedDirective));
      let evalBlocked = false;
      try {
        (0, eval)('1 + 1');
      } catch {
        evalBlocked = true;
      }
      const img = document.createElement('img');
      img.src = 'http://127.0.0.1:9/probe.png'; // loopback discard port: nothing leaves the machine
      document.body.appendChild(img);
      setTimeout(() => {
        img.remove();
        done({ evalBlocked, violations });
      }, 1000);
    });
    assert(outcome.evalBlocked, 'eval ran: script-src does not protect');
    assert(
      outcome.violations.some((d) => d.startsWith('img-src')),
      `no CSP violation for a non-self image: ${JSON.stringify(outcome)}`,
    );
  });

  await step('a weak passphrase cannot create the vault', async () => {
    await fill('#create-passphrase', 'password123');
    await waitText('#strength-label', 'eak');
    await fill('#create-confirm', 'password123');
    assert(!(await (await $('#create-vault-button')).isEnabled()), 'create button enabled for a weak passphrase');
    await shown('#strength-required');
  });

  await step('strong passphrase + test KDF creates the vault and shows the calibrated parameters', async () => {
    await fill('#create-passphrase', opt.passphrase);
    await waitText('#strength-label', 'strong');
    await fill('#create-confirm', opt.passphrase);
    await click('#test-kdf');
    await bannerShown();
    await snap('create-vault-form.png');
    await click('#create-vault-button');
    await shown('#create-result', 60000);
    assertEq(await text('[data-testid="kdf-algorithm"]'), 'argon2id', 'kdf algorithm');
    assert((await text('[data-testid="kdf-iterations"]')).length > 0, 'iterations shown');
    await bannerShown();
    await snap('create-vault.png');
  });

  await step('keys screen starts empty, with the test-vault banner and a Lock button', async () => {
    await click('#create-continue');
    await shown('#keys-empty');
    await bannerShown();
    await shown('#lock-button');
  });

  await step(`create key ${KEY} (symmetric-256, rotate every 90d)`, async () => {
    await click('#new-key-button');
    await fill('#key-name', KEY);
    await (await shown('#key-type')).selectByAttribute('value', 'symmetric-256');
    await fill('#key-rotate-every', '90d');
    await click('#create-key-button');
    await waitText('#key-name-heading', KEY);
    await waitText('[data-testid="version-state-1"]', 'Active');
    await bannerShown();
  });

  await step('rotate: v2 active, v1 decrypt-only', async () => {
    await click('#rotate-button');
    await waitText('[data-testid="version-state-2"]', 'Active');
    await waitText('[data-testid="version-state-1"]', 'Decrypt-only');
    await waitText('#key-active-version', 'v2');
  });

  await step('keys list shows the key with active v2 and rotation OK', async () => {
    await click('#nav-keys');
    await shown(`[data-testid="key-row-${KEY}"]`);
    assertEq(await text(`[data-testid="key-active-${KEY}"]`), 'v2', 'active version');
    assertEq(await text(`[data-testid="rotation-badge-${KEY}"]`), 'OK', 'rotation badge');
    assertEq(await text(`[data-testid="key-state-${KEY}"]`), 'Active', 'key state');
    await snap('keys.png');
  });

  await step('Lock returns to the unlock screen (banner stays)', async () => {
    await click('#lock-button');
    await shown('#unlock');
    await waitText('#lock-notice', 'locked');
    assert(!(await (await $('#lock-button')).isExisting()), 'Lock button still shown while locked');
    await bannerShown();
    await snap('unlock.png');
  });

  await step('a wrong passphrase is refused with a clear message', async () => {
    await fill('#unlock-passphrase', WRONG);
    await click('#unlock-button');
    await waitText('#unlock-error', 'Wrong passphrase', 20000);
    const msg = await text('#unlock-error');
    assert(/not unlocked/i.test(msg), `unclear message: ${msg}`);
    await shown('#unlock');
    await snap('unlock-wrong.png');
  });

  await step('the right passphrase unlocks', async () => {
    await fill('#unlock-passphrase', opt.passphrase);
    await click('#unlock-button');
    await shown(`[data-testid="key-row-${KEY}"]`, 20000);
    await bannerShown();
  });

  await step('key detail shows v1 decrypt-only and v2 active', async () => {
    await click(`[data-testid="key-link-${KEY}"]`);
    await waitText('[data-testid="version-state-1"]', 'Decrypt-only');
    await waitText('[data-testid="version-state-2"]', 'Active');
    const rows = await browser.$$('#versions-table tbody tr');
    assertEq(rows.length, 2, 'version rows');
    await bannerShown();
    await snap('key-detail.png');
  });

  await step('audit log lists the actions, incl. the failed unlock; the chain verifies', async () => {
    await click('#nav-audit');
    await shown('#audit-table');
    const body = await text('#audit-table');
    for (const action of ['rotate', 'unlock', 'lock']) {
      assert(body.includes(action), `audit log has no ${action} entry:\n${body}`);
    }
    assert(/refused|failed/.test(body), 'the failed unlock is not in the audit log');
    await click('#verify-chain-button');
    await waitText('#verify-result', 'Chain intact');
    assertEq(await (await $('#verify-report')).getAttribute('data-ok'), 'true', 'verify report ok');
    await bannerShown();
    await snap('audit.png');
  });
}

async function idlePhase() {
  await step('existing vault opens on the unlock screen', async () => {
    await shown('#unlock');
    await bannerShown();
  });
  await step('unlock, then stay idle: the vault locks itself and the window returns to unlock', async () => {
    await fill('#unlock-passphrase', opt.passphrase);
    await click('#unlock-button');
    await shown(`[data-testid="key-row-${KEY}"]`, 20000);
    await shown('#unlock', 15000);
    await waitText('#lock-notice', 'without activity');
  });
  await step('after the idle lock, commands need the passphrase again', async () => {
    assert(!(await (await $('#lock-button')).isExisting()), 'Lock button still shown while locked');
    await fill('#unlock-passphrase', opt.passphrase);
    await click('#unlock-button');
    await shown(`[data-testid="key-row-${KEY}"]`, 20000);
  });
}

try {
  await step('WebDriver session starts the app', async () => {
    browser = await remote({
      hostname: '127.0.0.1',
      port: 4444,
      logLevel: 'error',
      connectionRetryTimeout: 60000,
      connectionRetryCount: 1,
      capabilities: {
        browserName: 'wry',
        'wdio:enforceWebDriverClassic': true,
        'tauri:options': { application: opt.app, args: ['--vault', opt.vault] },
      },
    });
  });
  if (opt.phase === 'idle') await idlePhase();
  else await mainPhase();
} finally {
  if (browser) {
    try {
      await browser.deleteSession();
    } catch (err) {
      console.log(`(closing the session failed: ${err?.message ?? err})`);
    }
  }
  writeFileSync(opt.results, JSON.stringify(results));
}
process.exit(results.failed > 0 ? 1 : 0);
