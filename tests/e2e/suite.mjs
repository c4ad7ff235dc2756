// Custos window, end to end, over WebDriver (tauri-driver on 127.0.0.1:4444).
// Usage (run.sh does this): node suite.mjs --phase main|idle|custody --app BIN --vault PATH --passphrase P
//                            --screenshots DIR --results FILE
// The custody phase runs on its own vault with `--demo` (software keys next to the vault file).
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
const DEMO_BANNER = 'DEMO — software keys, not hardware';
// Custody phase: an officer and two custodians, each with a demo FIDO2 key and its own PIN.
const PINS = { olivia: '2468', carol: '1357', dave: '8642', wendy: '9753' };
// dave's demo YubiKey PIV key (a PIV PIN has 6 to 8 characters).
const DAVE_PIV_PIN = '86421357';
// Ceremony: the new passphrase set by recovery from carol's and dave's shares.
const RECOVERED = 'lighthouse quarry nineteen saffron kettle';
const RECOVERED_AGAIN = 'walnut harbour eleven cinder meadow';
// Carol's choice for her passphrase-locked share file (rekey).
const CAROL_FILE_PASS = 'heron basalt midnight quarry lantern';
const SECRET_KEY = 'payroll-archive';

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
  // Centre it first: WebKitWebDriver may drop a click on an element at the viewport's edge.
  await browser.execute((e) => e.scrollIntoView({ block: 'center' }), el);
  await el.click();
}
async function fill(sel, value) {
  const el = await shown(sel);
  await el.clearValue();
  await el.setValue(value);
}
async function snap(name, { top = false } = {}) {
  mkdirSync(opt.screenshots, { recursive: true });
  if (top) await browser.execute(() => window.scrollTo(0, 0));
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

// ---- custody (demo keys) ----------------------------------------------------------------------

async function demoBannerShown() {
  await waitText('#demo-banner', DEMO_BANNER);
}

/** The PIN dialog opens for `who` (optionally a new key: PIN asked twice); type the PIN, submit. */
async function enterPin(who, { purpose = 'enter', shot = null, pin = PINS[who] } = {}) {
  const dialog = await shown('#pin-dialog', 20000);
  const id = await dialog.getAttribute('data-request-id');
  assertEq(await dialog.getAttribute('data-purpose'), purpose, `PIN dialog purpose for ${who}`);
  const title = await text('#pin-title');
  if (purpose === 'enter') assert(title.includes(who), `PIN dialog is not for ${who}: ${title}`);
  await fill('#pin-input', pin);
  if (purpose === 'new') await fill('#pin-confirm', pin);
  if (shot) await snap(shot);
  await click('#pin-submit');
  // Closed, or already showing the next request (another key of the same operation).
  await browser.waitUntil(async () => {
    const d = await $('#pin-dialog');
    return !(await d.isExisting()) || (await d.getAttribute('data-request-id')) !== id;
  }, {
    timeout: 10000,
    timeoutMsg: `the PIN dialog for ${who} did not close after OK`,
  });
}

/** "Touch your key" appears and then clears (the demo key approves at once). */
async function touchSeen({ shot = null } = {}) {
  await shown('#touch-prompt', 20000);
  if (shot) await snap(shot);
  await browser.waitUntil(async () => !(await (await $('#device-dialog')).isExisting()), {
    timeout: 20000,
    timeoutMsg: 'the touch prompt never cleared',
  });
}

/** The device dialog (PIN or touch prompt) has closed. */
async function deviceDialogGone(timeoutMsg) {
  await browser.waitUntil(async () => !(await (await $('#device-dialog')).isExisting()), { timeout: 20000, timeoutMsg });
}

async function actAs(name) {
  const select = await shown('#acting-as');
  await select.selectByAttribute('value', name);
  await browser.waitUntil(async () => (await (await $('#acting-as')).getValue()) === name && !(await (await $('#acting-required')).isExisting()), {
    timeout: 10000,
    timeoutMsg: `acting as ${name} was not taken`,
  });
}

async function addCustodian(name, role) {
  await fill('#custodian-name', name);
  await click(`#role-${role}`);
  await click('#add-custodian-button');
}

async function custodyPhase() {
  let requestId = '';

  await step('a --demo window shows the DEMO banner from the first screen', async () => {
    await shown('#create-vault');
    await demoBannerShown();
  });

  await step('create a demo test vault; no custodians yet', async () => {
    await fill('#create-passphrase', opt.passphrase);
    await waitText('#strength-label', 'strong');
    await fill('#create-confirm', opt.passphrase);
    await click('#test-kdf');
    await click('#create-vault-button');
    await shown('#create-result', 60000);
    await click('#create-continue');
    await shown('#keys-empty');
    await click('#nav-custodians');
    await shown('#custody-unguarded');
    await demoBannerShown();
    await bannerShown();
  });

  await step('add the officer olivia; "acting as" appears and is required', async () => {
    await addCustodian('olivia', 'officer');
    await shown('[data-testid="custodian-card-olivia"]');
    await waitText('#acting-required', 'choose who you are');
    await actAs('olivia');
  });

  await step("enrol olivia's demo FIDO2 key: choose its PIN in the dialog, the touch prompt appears and clears", async () => {
    await click('[data-testid="enrol-button-olivia"]');
    await click('#enrol-submit');
    await enterPin('olivia', { purpose: 'new', shot: 'pin-dialog.png' });
    await touchSeen({ shot: 'touch-prompt.png' });
    await waitText('#custodians-message', 'FIDO2 key enrolled for olivia');
    await waitText('[data-testid="auth-row-olivia-0"]', 'DEMO software FIDO2 key');
    assert(/^\d+$/.test(await text('[data-testid="auth-counter-olivia-0"]')), "olivia's signature counter is shown");
  });

  // wendy, an auditor, is the ceremony's witness later (neither the administrator nor a share holder).
  for (const [name, role] of [['carol', 'custodian'], ['dave', 'custodian'], ['wendy', 'auditor']]) {
    await step(`add ${role} ${name} (olivia's PIN and touch) and enrol ${name}'s demo key`, async () => {
      await addCustodian(name, role);
      await enterPin('olivia');
      await touchSeen();
      await shown(`[data-testid="custodian-card-${name}"]`, 20000);
      await click(`[data-testid="enrol-button-${name}"]`);
      await click('#enrol-submit');
      await enterPin(name, { purpose: 'new' });
      await enterPin('olivia');
      await touchSeen();
      await waitText('#custodians-message', `FIDO2 key enrolled for ${name}`, 20000);
      await waitText(`[data-testid="auth-row-${name}-0"]`, 'enrolled');
      assert((await text(`[data-testid="auth-credential-${name}-0"]`)).length >= 16, `${name}'s credential id`);
    });
  }

  await step("enrol a demo YubiKey PIV key for dave in slot 82: dave chooses its PIV PIN in the dialog (6-8 characters), olivia touches", async () => {
    await click('[data-testid="enrol-button-dave"]');
    await click('#enrol-kind-piv');
    await fill('#enrol-slot', '82');
    await click('#enrol-submit');
    await enterPin('dave', { purpose: 'new', pin: DAVE_PIV_PIN });
    await enterPin('olivia');
    await deviceDialogGone("olivia's touch prompt never cleared");
    await waitText('#custodians-message', 'PIV', 20000);
    await waitText('[data-testid="auth-row-dave-1"]', 'enrolled');
    assert(/slot\s+82/.test(await text('[data-testid="auth-card-dave-1"]')), 'the PIV slot is shown');
  });

  await step('custodians screen lists roles and keys (screenshot)', async () => {
    await waitText('[data-testid="custodian-roles-olivia"]', 'officer');
    await waitText('[data-testid="custodian-roles-carol"]', 'custodian');
    await demoBannerShown();
    await snap('custodians.png', { top: true });
  });

  await step('roles & rules: every rule can be met; activate the two-person rule with olivia\'s touch', async () => {
    await click('#nav-rules');
    await waitText('#rules-state', 'setup');
    await shown('#rules-met');
    const destroyRow = await text('[data-testid="rule-row-key.destroy"]');
    assert(/officer/.test(destroyRow) && /2/.test(destroyRow), `key.destroy rule: ${destroyRow}`);
    await click('#activate-rules-button');
    await enterPin('olivia');
    await touchSeen();
    await waitText('#rules-state', 'enforced', 20000);
    await snap('rules.png');
  });

  await step(`as olivia: create ${SECRET_KEY} and rotate it (touch only, no approval)`, async () => {
    await click('#nav-keys');
    await click('#new-key-button');
    await fill('#key-name', SECRET_KEY);
    await (await shown('#key-type')).selectByAttribute('value', 'symmetric-256');
    await click('#create-key-button');
    await waitText('[data-testid="version-state-1"]', 'Active');
    await click('#rotate-button');
    await enterPin('olivia');
    await touchSeen();
    await waitText('[data-testid="version-state-2"]', 'Active', 20000);
    await waitText('[data-testid="version-state-1"]', 'Decrypt-only');
  });

  await step('as olivia: destroying v1 goes pending (request id, needs 2)', async () => {
    await click('[data-testid="destroy-1"]');
    await click('[data-testid="destroy-confirm-1"]');
    await enterPin('olivia');
    await touchSeen();
    await waitText('#key-pending', 'Pending approval: request', 20000);
    const note = await text('#key-pending');
    assert(note.includes('needs 2 more approvals'), `pending note: ${note}`);
    requestId = await (await $('#key-pending')).getAttribute('data-request');
    assert(/^[0-9a-f]{12}$/.test(requestId), `request id: ${requestId}`);
    assert(note.includes(requestId), 'the note names the request');
    assertEq(await text('[data-testid="version-state-1"]'), 'Decrypt-only', 'v1 before approvals');
    await waitText('#pending-count', '1');
  });

  await step('olivia cannot approve her own request', async () => {
    await click('#nav-approvals');
    const button = await shown(`[data-testid="approve-${requestId}"]`);
    assert(!(await button.isEnabled()), 'the requester may approve');
    await waitText(`[data-testid="request-row-${requestId}"]`, 'olivia asked for this and cannot approve it');
  });

  await step('acting as carol: approve (PIN, touch); one of two approvals', async () => {
    await actAs('carol');
    await waitText(`[data-testid="approve-${requestId}"]`, 'Approve as carol');
    await click(`[data-testid="approve-${requestId}"]`);
    await enterPin('carol');
    await touchSeen();
    await waitText('#approvals-message', 'Approved as carol', 20000);
    await waitText(`[data-testid="request-approvers-${requestId}"]`, 'carol');
    await waitText(`[data-testid="request-missing-${requestId}"]`, '1 of 2');
    await snap('approvals.png');
  });

  await step('acting as dave: the second approval carries out the destroy; the request is done', async () => {
    await actAs('dave');
    await click(`[data-testid="approve-${requestId}"]`);
    await enterPin('dave');
    await touchSeen();
    await waitText(`[data-testid="request-status-${requestId}"]`, 'done', 20000);
    await waitText('#approvals-message', 'approved and carried out');
    await shown('#approvals-empty');
    await waitText(`[data-testid="history-row-${requestId}"]`, 'carol, dave');
    await snap('approvals-done.png');
  });

  await step(`${SECRET_KEY} v1 is destroyed`, async () => {
    await click('#nav-keys');
    await click(`[data-testid="key-link-${SECRET_KEY}"]`);
    await waitText('[data-testid="version-state-1"]', 'Destroyed');
    await waitText('[data-testid="version-state-2"]', 'Active');
  });

  await step('audit timeline: both approvals, and the destroy "approved by" carol and dave; the chain verifies', async () => {
    await click('#nav-audit');
    await shown('#audit-table');
    const rows = await browser.execute(() =>
      [...document.querySelectorAll('#audit-table tbody tr')].map((tr) => ({ id: tr.getAttribute('data-testid'), text: tr.innerText })),
    );
    const approvals = rows.filter((r) => r.text.includes('request.approve') && r.text.includes(requestId) && /\bok\b/.test(r.text));
    assertEq(approvals.length, 2, 'approval entries');
    const destroy = rows.find((r) => r.text.includes('key.destroy') && r.text.includes('approved by'));
    assert(destroy, `no key.destroy entry with "approved by":\n${rows.map((r) => r.text).join('\n')}`);
    assert(destroy.text.includes('carol') && destroy.text.includes('dave'), `approvers missing: ${destroy.text}`);
    assert(destroy.text.includes('requested by olivia'), `requester missing: ${destroy.text}`);
    await click('#verify-chain-button');
    await waitText('#verify-result', 'Chain intact');
    await browser.execute((id) => document.querySelector(`[data-testid="${id}"]`)?.scrollIntoView({ block: 'center' }), destroy.id);
    await snap('audit-approval.png');
  });

  await ceremonyPhase();
}

/** The words of the share on screen, in order. */
async function shownWords() {
  await shown('#share-words');
  const words = await browser.execute(() => [...document.querySelectorAll('#share-words li')].map((li) => li.getAttribute('data-word') ?? li.innerText));
  return words.map((w) => w.trim().split(/\s+/).pop());
}

// ---- quorum ceremony (continues the custody phase: olivia officer; carol, dave custodians; wendy auditor)

async function ceremonyPhase() {
  const words = {};
  const daveQr = join(opt.out, 'dave-card-qr.png');
  const files = {};

  await step('ceremonies screen: no escrow yet; the wizard shows the script for 2-of-2 (carol screen, dave card, witness wendy)', async () => {
    await actAs('olivia');
    await click('#nav-ceremonies');
    await shown('#no-escrow');
    await click('#new-escrow');
    await click('[data-testid="holder-check-carol"]');
    await click('[data-testid="holder-check-dave"]');
    await (await shown('[data-testid="holder-medium-carol"]')).selectByAttribute('value', 'screen');
    await (await shown('[data-testid="holder-medium-dave"]')).selectByAttribute('value', 'card');
    await (await shown('#escrow-witness')).selectByAttribute('value', 'wendy');
    await fill('#escrow-threshold', '2');
    const script = await browser.execute(() => [...document.querySelectorAll('#escrow-script li')].map((li) => li.innerText));
    assertEq(script.length, 6, `script steps (open, witness, split, 2 hand-outs, close): ${script.join(' | ')}`);
    assert(/olivia/.test(script[0]) && /wendy/.test(script[1]) && /carol/.test(script[3]) && /dave/.test(script[4]) && /wendy/.test(script[5]), `script order: ${script.join(' | ')}`);
    await snap('ceremony-setup.png');
  });

  await step('run the escrow: olivia, wendy, carol, dave and wendy again each enter their PIN (and touch), in script order', async () => {
    await click('#escrow-run');
    // A demo key approves at once and the next person's PIN dialog follows straight away, so the
    // brief touch prompts are not waited for here; the transcript's UP flags below show each touch.
    for (const who of ['olivia', 'wendy', 'carol', 'dave', 'wendy']) {
      if (who === 'dave') {
        // While dave's dialog waits, the screen lists the steps so far, the last one his.
        await shown('#pin-dialog', 20000);
        const progress = await browser.execute(() => [...document.querySelectorAll('#escrow-progress li')].map((li) => li.innerText));
        assert(progress.length === 4 && /dave receives share #2/.test(progress[3]), `script progress shown: ${progress.join(' | ')}`);
      }
      await enterPin(who);
    }
    await shown('#handout', 30000);
    await deviceDialogGone("wendy's touch prompt never cleared");
    await waitText('[data-testid="handout-status-1"]', 'not confirmed');
  });

  await step("carol's share: shown only on request (words + QR), a wrong word typed back is named, the right words confirm it", async () => {
    await click('[data-testid="reveal-1"]');
    await shown('#share-qr svg');
    words.carol = await shownWords();
    assertEq(words.carol.length, 34, 'share words');
    await snap('ceremony-share.png');
    const typo = [...words.carol];
    typo[4] = typo[4] === 'abandon' ? 'ability' : 'abandon';
    await fill('#confirm-words', typo.join(' '));
    await click('#confirm-submit');
    await waitText('#confirm-error', 'word 5');
    await fill('#confirm-words', words.carol.join(' '));
    await click('#confirm-submit');
    await waitText('[data-testid="handout-status-1"]', 'confirmed');
    assert(!(await (await $('#share-words')).isExisting()), 'the words stay on screen after confirming');
  });

  await step("dave's share card: print preview with QR, words, M-of-N, custody log and bag serial field", async () => {
    await click('[data-testid="card-2"]');
    const card = await text('#share-card');
    assert(card.includes('dave') && /2 of 2/.test(card), `card header: ${card.slice(0, 200)}`);
    assert(/bag serial/i.test(card) && /custody log/i.test(card), 'card has the bag serial field and custody log');
    await shown('#share-card svg');
    words.dave = await browser.execute(() => [...document.querySelectorAll('#share-card li')].map((li) => (li.getAttribute('data-word') ?? li.innerText).trim().split(/\s+/).pop()));
    assertEq(words.dave.length, 34, "dave's card words");
    await snap('ceremony-card.png');
    // A picture of the card's QR code, as a scanner would save it: the recovery reads it back.
    // (The whole window, as a phone photo of the screen would be: WebKit's element screenshot of
    // the SVG comes out black.)
    await browser.execute((e) => e.scrollIntoView({ block: 'center' }), await shown('[data-testid="card-qr"]'));
    await browser.pause(250);
    await browser.saveScreenshot(daveQr);
    await click('#card-close');
    assert(!(await (await $('#share-card')).isExisting()), 'the card stays open');
  });

  await step('finish the hand-out: the witness records the bag serial and a note with a touch; the transcript shows every step; export it', async () => {
    // The witness types the card's bag serial and a note, then touches to record the hand-out.
    await fill('[data-testid="bag-serial-2"]', 'TEB-0042');
    await fill('#handout-note', 'none: the script was followed');
    await click('#handout-finish');
    await enterPin('wendy');
    await shown('#transcript', 20000);
    await deviceDialogGone("wendy's touch prompt never cleared");
    const rows = await browser.execute(() => [...document.querySelectorAll('#transcript tbody tr')].map((tr) => tr.innerText));
    assertEq(rows.length, 7, `transcript steps: ${rows.join(' | ')}`);
    assert(rows[0].includes('olivia') && rows[0].includes('open'), `first step: ${rows[0]}`);
    assert(rows.filter((r) => /UP/.test(r)).length === 6, `six steps with a touch: ${rows.join(' | ')}`);
    assert(/wendy/.test(rows[6]) && /TEB-0042/.test(rows[6]) && /script was followed/.test(rows[6]), `the hand-out record: ${rows[6]}`);
    await click('#transcript-export');
    await waitText('#transcript-exported', '.json');
    assert(/^[0-9a-f]{64}$/.test(await text('#transcript-head')), 'the transcript head hash is shown');
    await snap('ceremony-transcript.png', { top: true });
  });

  await step("drill: carol's share checked alone, marked verified; dave's still never drilled", async () => {
    await click('#nav-ceremonies');
    await waitText('[data-testid="share-status-1"]', 'never');
    await click('#drill-open');
    await fill('#drill-share-input', words.carol.join(' '));
    await click('#drill-share-add');
    await waitText('#drill-result', 'verified');
    await snap('ceremony-drill.png');
    await click('#nav-ceremonies');
    await waitText('[data-testid="share-status-1"]', 'verified');
    await waitText('[data-testid="share-status-2"]', 'never');
    await waitText('[data-testid="escrow-drill-policy"]', 'every 180 days');
    await snap('ceremony-status.png');
  });

  await step('lock; recover from the unlock screen: each share checked on entry, a duplicate refused, a new passphrase, each holder confirms with their key', async () => {
    await click('#lock-button');
    await shown('#unlock');
    await click('#recover-open');
    await fill('#recover-share-input', words.carol.join(' '));
    await click('#recover-share-add');
    await shown('[data-testid="recover-share-1"]');
    await waitText('#recover-needed', '1 of 2');
    await fill('#recover-share-input', words.carol.join(' '));
    await click('#recover-share-add');
    await shown('#recover-share-error');
    assert(!(await (await byTest('recover-share-2')).isExisting()), 'a duplicate share was accepted');
    const typo = [...words.dave];
    typo[9] = typo[9] === 'abandon' ? 'ability' : 'abandon';
    await fill('#recover-share-input', typo.join(' '));
    await click('#recover-share-add');
    await waitText('#recover-share-error', 'word 10');
    // Dave's share from the picture of his card's QR code.
    await click('[data-testid="recover-via-picture"]');
    await (await shown('#recover-picture-input')).addValue(daveQr);
    await click('#recover-share-add');
    await waitText('#recover-needed', '2 of 2');
    await waitText('[data-testid="recover-share-from-2"]', 'picture dave-card-qr.png');
    await fill('#recover-passphrase', RECOVERED);
    await fill('#recover-confirm', RECOVERED);
    await snap('ceremony-recover.png');
    await click('#recover-submit');
    // Each share's holder confirms with their own key before anything changes.
    await enterPin('carol');
    await enterPin('dave');
    await shown('#nav-keys', 60000);
    await deviceDialogGone("dave's touch prompt never cleared");
    await click('#nav-audit');
    await waitText('#audit-table', 'ceremony.recover', 20000);
    await waitText('#audit-table', 'share #2 by dave', 20000);
  });

  await step('rekey: carol receives a passphrase-locked share file, dave a file for his YubiKey; the same five touches', async () => {
    // Nobody acts in a freshly recovered window: olivia administers again.
    await actAs('olivia');
    await click('#nav-ceremonies');
    await click('#new-escrow');
    await shown('#escrow-rekey-warning');
    await click('[data-testid="holder-check-carol"]');
    await click('[data-testid="holder-check-dave"]');
    await (await shown('[data-testid="holder-medium-carol"]')).selectByAttribute('value', 'passphrase-file');
    await (await shown('[data-testid="holder-medium-dave"]')).selectByAttribute('value', 'file');
    await (await shown('#escrow-witness')).selectByAttribute('value', 'wendy');
    await fill('#escrow-threshold', '2');
    await fill('#escrow-drill-days', '90');
    await shown('#escrow-file-note');
    await click('#escrow-run');
    for (const who of ['olivia', 'wendy', 'carol', 'dave', 'wendy']) await enterPin(who);
    await shown('#handout', 30000);
    await deviceDialogGone("wendy's touch prompt never cleared");
    await waitText('[data-testid="handout-status-1"]', 'not written');
    assert(!(await (await byTest('reveal-1')).isExisting()), 'a file share is never shown on screen');
  });

  await step("hand-out of the files: carol chooses her file's passphrase (a weak one refused), dave's is locked to his PIV key; both written", async () => {
    await click('[data-testid="write-1"]');
    const dir = await (await shown('#share-file-dir')).getValue();
    assert(dir.endsWith('.shares'), `the offered directory is next to the vault: ${dir}`);
    await fill('#share-file-pass', 'carol');
    await fill('#share-file-pass-again', 'carol');
    await click('#share-write-submit');
    await waitText('#share-write-error', 'too easy to guess');
    await fill('#share-file-pass', CAROL_FILE_PASS);
    await fill('#share-file-pass-again', CAROL_FILE_PASS);
    await snap('ceremony-share-file.png');
    await click('#share-write-submit');
    await waitText('[data-testid="handout-status-1"]', 'file written');
    files.carol = (await text('#handout-message')).match(/written to (\/.*\.age)\.$/)?.[1];
    assert(files.carol && files.carol.startsWith(dir), `carol's file path: ${await text('#handout-message')}`);
    await click('[data-testid="write-2"]');
    assert(!(await (await $('#share-file-pass')).isExisting()), 'a YubiKey share file asks no passphrase');
    await click('#share-write-submit');
    await waitText('[data-testid="handout-status-2"]', 'file written');
    files.dave = (await text('#handout-message')).match(/written to (\/.*\.age)\.$/)?.[1];
    assert(files.dave && files.dave.endsWith('-share-2-dave.age'), `dave's file path: ${await text('#handout-message')}`);
  });

  await step('the witness notes a deviation at step 3 with a touch, then records the hand-out; both are in the transcript', async () => {
    await (await shown('#deviation-step')).selectByAttribute('value', '3');
    await fill('#deviation-note', 'the split was announced late: the room was not ready');
    await click('#deviation-submit');
    await enterPin('wendy');
    await waitText('#deviation-list', 'at step 3 (split, olivia): the split was announced late', 20000);
    await deviceDialogGone("wendy's touch prompt never cleared");
    await browser.execute(() => document.querySelector('#deviation-form')?.scrollIntoView({ block: 'center' }));
    await snap('ceremony-deviation.png');
    await click('#handout-finish');
    await enterPin('wendy');
    await shown('#transcript', 20000);
    await deviceDialogGone("wendy's touch prompt never cleared");
    const rows = await browser.execute(() => [...document.querySelectorAll('#transcript tbody tr')].map((tr) => tr.innerText));
    assertEq(rows.length, 8, `rekey transcript steps: ${rows.join(' | ')}`);
    assert(/deviation/.test(rows[6]) && /announced late/.test(rows[6]), `the deviation step: ${rows[6]}`);
    assert(/locked with their passphrase/.test(rows[7]) && /for their YubiKey/.test(rows[7]), `the hand-out record: ${rows[7]}`);
    assert(/every 90 days/.test(rows[0]), `the policy is in the script: ${rows[0]}`);
  });

  await step("lock; recover again: carol's old words are dead after the rekey; her file opens with its passphrase, dave's with his YubiKey PIN", async () => {
    await click('#lock-button');
    await shown('#unlock');
    await click('#recover-open');
    await fill('#recover-share-input', words.carol.join(' '));
    await click('#recover-share-add');
    await shown('#recover-share-error');
    assert(!(await (await byTest('recover-share-1')).isExisting()), 'a share of the old escrow was accepted');
    await click('[data-testid="recover-via-file"]');
    await (await shown('#recover-file-input')).addValue(files.carol);
    await fill('#recover-file-passphrase', CAROL_FILE_PASS);
    await click('#recover-share-add');
    await waitText('#recover-needed', '1 of 2');
    await (await shown('#recover-file-input')).addValue(files.dave);
    await click('#recover-share-add');
    await enterPin('dave', { pin: DAVE_PIV_PIN });
    await waitText('#recover-needed', '2 of 2', 20000);
    await deviceDialogGone("dave's PIV touch prompt never cleared");
    await waitText('[data-testid="recover-share-from-2"]', 'share-2-dave.age');
    await waitText('[data-testid="recover-share-from-1"]', 'share-1-carol.age');
    await fill('#recover-passphrase', RECOVERED_AGAIN);
    await fill('#recover-confirm', RECOVERED_AGAIN);
    await snap('ceremony-recover-files.png');
    await click('#recover-submit');
    await enterPin('carol');
    await enterPin('dave');
    await shown('#nav-keys', 60000);
    await deviceDialogGone("dave's touch prompt never cleared");
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
        'tauri:options': {
          application: opt.app,
          args: opt.phase === 'custody' ? ['--vault', opt.vault, '--demo'] : ['--vault', opt.vault],
        },
      },
    });
  });
  if (opt.phase === 'idle') await idlePhase();
  else if (opt.phase === 'custody') await custodyPhase();
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
