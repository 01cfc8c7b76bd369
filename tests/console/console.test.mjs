// The web console, end to end in headless Chromium (Debian's, driven by playwright-core),
// against a real host that `tests/tests/console.rs` starts and points us at:
//
//   CONSOLE_URL   the host's origin (http://127.0.0.1:PORT)
//   ADMIN_TOKEN   server.admin_token;  READ_TOKEN  server.admin_read_token
//   STRIPE_SECRET the `stripe` connector's signing secret
//   ARTIFACTS     where the screenshots of each view go
//   CHROMIUM      the browser (default /usr/bin/chromium)
//
// Webhooks are signed here as Stripe signs them (docs/vendors.md: t=…,v1=HMAC-SHA256 of
// "t.body"). The last line printed is a JSON summary the Rust side checks against what the
// fake backend received, after `SUMMARY `.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const BASE = process.env.CONSOLE_URL;
const ADMIN_TOKEN = process.env.ADMIN_TOKEN;
const READ_TOKEN = process.env.READ_TOKEN;
const SECRET = process.env.STRIPE_SECRET;
const ARTIFACTS = process.env.ARTIFACTS ?? "console-screenshots";
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
assert.ok(BASE && ADMIN_TOKEN && READ_TOKEN && SECRET, "run by tests/tests/console.rs");
mkdirSync(ARTIFACTS, { recursive: true });

const LAUNCH = {
  executablePath: CHROMIUM,
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
};
const WAIT = { timeout: 20_000 };

const evtId = () => `evt_console_${randomBytes(6).toString("hex")}`;

async function sendStripe(id, type = "invoice.paid") {
  const body = JSON.stringify({
    id, object: "event", api_version: "2024-06-20", created: 1_700_000_000, type,
    data: { object: { id: "in_console", object: "invoice", amount_paid: 2000 } },
    livemode: false, pending_webhooks: 1, request: { id: null, idempotency_key: null },
  });
  const t = Math.floor(Date.now() / 1000);
  const v1 = createHmac("sha256", SECRET).update(`${t}.${body}`).digest("hex");
  const response = await fetch(`${BASE}/hooks/stripe`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "Stripe-Signature": `t=${t},v1=${v1}` },
    body,
  });
  const text = await response.text();
  assert.equal(response.status, 200, text);
  return JSON.parse(text).id;
}

const shot = (page, name) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });

async function signIn(page, token) {
  await page.goto(`${BASE}/console/`);
  await page.getByLabel("Admin token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
}

/** The events list's row for a vendor key. */
const rowOf = (page, key) => page.locator("#event-rows tr", { hasText: key });

/** A step of the walk; when it fails, the page as it was is saved beside the screenshots. */
const step = (t, page, name, body) => t.test(name, async () => {
  try {
    await body();
  } catch (error) {
    await page.screenshot({ path: join(ARTIFACTS, `FAILED ${name}.png`), fullPage: true }).catch(() => {});
    throw error;
  }
});

const summary = {};
let browser;

test("the console, as an operator uses it", async (t) => {
  browser = await chromium.launch(LAUNCH);
  const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    // A refused token answers 401, which the browser logs as a failed resource load.
    if (message.type() === "error" && !message.text().includes("401")) problems.push(message.text());
  });

  await step(t, page, "a wrong token is refused and nothing is kept", async () => {
    await signIn(page, "not-the-token");
    await assert.doesNotReject(page.getByRole("alert").filter({ hasText: "That token was refused." }).waitFor(WAIT));
    assert.equal(await page.locator("#nav").isHidden(), true);
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    await shot(page, "01-login-refused");
  });

  await step(t, page, "the token signs in, kept in this tab's sessionStorage only", async () => {
    await signIn(page, ADMIN_TOKEN);
    await page.getByRole("heading", { name: "Events" }).waitFor(WAIT);
    assert.equal(await page.evaluate(() => sessionStorage.getItem("switchyard.token")), ADMIN_TOKEN);
    assert.ok(!page.url().includes(ADMIN_TOKEN), "not in the URL");
    assert.deepEqual(await context.cookies(), [], "no cookie");
    assert.equal(await page.evaluate(() => localStorage.getItem("switchyard.token")), null);
  });

  const first = evtId();
  summary.replayed = first;
  await step(t, page, "a signed event arrives and appears without a reload", async () => {
    summary.first_event = await sendStripe(first);
    await rowOf(page, first).waitFor(WAIT);
    await rowOf(page, first).locator('[data-status="succeeded"]').waitFor(WAIT);
    await shot(page, "02-events");
  });

  let idempotencyKey;
  await step(t, page, "the event shows its request, signature, attempt and delivery", async () => {
    await rowOf(page, first).getByRole("link").click();
    await page.locator("#event-id", { hasText: summary.first_event }).waitFor(WAIT);
    assert.match(await page.locator("#verification").innerText(), /Signature \(stripe\): verified/);
    const body = await page.locator('#request-body pre[data-kind="json"]').innerText();
    assert.match(body, /"type": "invoice\.paid"/, "pretty-printed JSON");
    assert.equal(await page.locator("tr.signature th").innerText(), "stripe-signature");
    await page.locator("#attempts li.attempt").first().waitFor(WAIT);
    await page.locator("#deliveries li.delivery").first().locator('[data-status="succeeded"]').waitFor(WAIT);
    idempotencyKey = await page.locator("#deliveries .idempotency-key").first().innerText();
    assert.match(idempotencyKey, new RegExp(`^${summary.first_event}-\\d+$`));
    await page.locator("#deliveries details summary", { hasText: "Request" }).first().click();
    await shot(page, "03-event");
  });

  await step(t, page, "replay with the same keys shows the second attempt", async () => {
    await page.getByLabel("Same Idempotency-Keys").check();
    await page.getByRole("button", { name: "Replay", exact: true }).click();
    await page.locator("#attempts li.attempt").nth(1).waitFor(WAIT);
    await page.locator("#event-status [data-status='succeeded']").waitFor(WAIT);
    const keys = await page.locator("#deliveries .idempotency-key").allInnerTexts();
    assert.ok(keys.length >= 2, `two runs' deliveries, saw ${keys.length}`);
    assert.ok(keys.every((k) => k === idempotencyKey), `the same key: ${keys}`);
    await shot(page, "04-event-replayed");
  });

  await step(t, page, "search finds an event by vendor id, event id and Idempotency-Key", async () => {
    for (const term of [first, summary.first_event, idempotencyKey]) {
      await page.goto(`${BASE}/console/#/events`);
      await page.getByLabel("Search").fill(term);
      await page.getByRole("button", { name: "Apply" }).click();
      await page.locator("#events-note", { hasText: `1 found for “${term}”` }).waitFor(WAIT);
      assert.equal(await page.locator("#event-rows tr").count(), 1, term);
      assert.equal(await page.locator("#event-rows tr").getAttribute("data-id"), summary.first_event);
    }
    await shot(page, "05-search");
    // From the keyboard: the search box is a form field, Enter applies it.
    await page.getByLabel("Search").fill("evt_nobody_sent_this");
    await page.getByLabel("Search").press("Enter");
    await page.locator("#events-note", { hasText: "Nothing has the key" }).waitFor(WAIT);
    await page.getByRole("button", { name: "Clear" }).click();
  });

  const waiting = evtId();
  summary.waited = waiting;
  await step(t, page, "a paused connector's new events wait, and flow on resume", async () => {
    await page.getByRole("link", { name: "Connectors" }).click();
    const card = page.locator('article[data-connector="stripe"]');
    await card.getByRole("button", { name: "Pause" }).click();
    await card.locator('[data-state="paused"]').waitFor(WAIT);
    await shot(page, "06-connectors-paused");

    await sendStripe(waiting);
    await page.getByRole("link", { name: "Events" }).click();
    await rowOf(page, waiting).locator('[data-status="pending"]').waitFor(WAIT);
    // It stays pending while the connector is paused: three more refreshes of the list.
    for (let i = 0; i < 3; i++) {
      await page.waitForResponse((r) => r.url().includes("/v1/events?"), WAIT);
      assert.equal(await rowOf(page, waiting).locator(".status").innerText(), "pending");
    }

    await page.getByRole("link", { name: "Connectors" }).click();
    await card.getByRole("button", { name: "Resume" }).click();
    await card.locator('[data-state="running"]').waitFor(WAIT);
    await page.getByRole("link", { name: "Events" }).click();
    await rowOf(page, waiting).locator('[data-status="succeeded"]').waitFor(WAIT);
  });

  await step(t, page, "a destination is disabled and enabled from its card", async () => {
    await page.getByRole("link", { name: "Destinations" }).click();
    const card = page.locator('article[data-destination="audit"]');
    await card.locator('[data-state="closed"]').waitFor(WAIT);
    assert.match(await card.innerText(), /\/audit/);
    await card.getByRole("button", { name: "Disable" }).click();
    await card.locator('[data-state="disabled"]', { hasText: "disabled (operator)" }).waitFor(WAIT);
    await shot(page, "07-destination-disabled");
    await card.getByRole("button", { name: "Enable" }).click();
    await card.locator('[data-state="closed"]').waitFor(WAIT);
  });

  await step(t, page, "the activity chart draws this host's webhooks and deliveries", async () => {
    await page.getByRole("link", { name: "Activity" }).click();
    const totals = await page.locator("#totals").innerText();
    const accepted = Number(/(\d+) accepted/.exec(totals)[1]);
    assert.ok(accepted >= 2, totals);
    assert.ok(Number(/(\d+) succeeded/.exec(totals)[1]) >= 3, totals);
    assert.ok(await page.locator("rect.bar.accepted").count() >= 1);
    assert.ok(await page.locator("path.line.p50").count() === 1);
    await shot(page, "07-activity-1h");
    await page.getByRole("button", { name: "Last 24 hours" }).click();
    await page.locator('[data-window="24h"][aria-pressed="true"]').waitFor(WAIT);
    await shot(page, "08-activity-24h");
  });

  await step(t, page, "bulk replay of a filtered set reports its progress", async () => {
    await page.getByRole("link", { name: "Events" }).click();
    await page.getByLabel("Connector").selectOption("stripe");
    await page.getByLabel("Status").selectOption("succeeded");
    await page.getByRole("button", { name: "Apply" }).click();
    await page.getByRole("button", { name: "Replay matching…" }).click();
    await page.getByLabel("Same keys as the first run (receivers dedupe)").check();
    await page.locator("#bulk-start").click();
    const status = page.locator("#bulk-status", { hasText: "Done" });
    await status.waitFor(WAIT);
    const [, read, replayed] = /read (\d+), replayed (\d+)/.exec(await status.innerText()).map(Number);
    assert.equal(read, 2, "both events are succeeded");
    assert.equal(replayed, 2);
    await shot(page, "09-bulk-replay");
    await page.locator("#bulk-close").click();
  });

  await step(t, page, "the dark theme", async () => {
    await page.getByRole("button", { name: "Switch between light and dark" }).click();
    assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), "dark");
    // The page is drawn dark (--bg's dark shade), not only marked so.
    assert.equal(await page.evaluate(() => getComputedStyle(document.body).backgroundColor), "rgb(21, 23, 27)");
    await page.getByRole("link", { name: "Events" }).click();
    await shot(page, "10-events-dark");
  });

  await step(t, page, "the page ran under its CSP without errors", async () => {
    const response = await page.goto(`${BASE}/console/`);
    assert.match(response.headers()["content-security-policy"], /script-src 'self'/);
    assert.deepEqual(problems, []);
  });

  await step(t, page, "a read-only token sees no actions", async () => {
    const readOnly = await browser.newContext();
    const page = await readOnly.newPage();
    await signIn(page, READ_TOKEN);
    await page.locator("#access", { hasText: "read-only" }).waitFor(WAIT);
    await page.goto(`${BASE}/console/#/connectors`);
    await page.locator('article[data-connector="stripe"]').waitFor(WAIT);
    assert.equal(await page.getByRole("button", { name: "Pause" }).count(), 0);
    assert.equal(await page.getByRole("button", { name: "Reload" }).count(), 0);
    await page.goto(`${BASE}/console/#/destinations`);
    await page.locator('article[data-destination="audit"]').waitFor(WAIT);
    assert.equal(await page.getByRole("button", { name: "Disable" }).count(), 0);
    await page.goto(`${BASE}/console/#/events/${summary.first_event}`);
    await page.locator("#event-id").waitFor(WAIT);
    assert.equal(await page.locator("#replay").count(), 0);
    assert.equal(await page.getByRole("button", { name: "Replay matching…" }).isVisible(), false);
    await readOnly.close();
  });

  await browser.close();
  console.log(`SUMMARY ${JSON.stringify(summary)}`);
});
