// Loads the status page in the system's headless Chromium at a desktop and a phone width and prints, as JSON, what
// tests/e2e/page.rs asserts on: how wide the page scrolls, where the landmarks are, and whether each agent's name
// and state are on screen. Optionally saves a screenshot of the desktop view.
//
// Usage: node layout.mjs URL [SCREENSHOT.png]
import { chromium } from "playwright-core";

const [url, screenshot] = process.argv.slice(2);
if (!url) {
  console.error("usage: node layout.mjs URL [SCREENSHOT.png]");
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const out = {};
try {
  for (const [name, width, height, mobile] of [
    ["desktop", 1400, 900, false],
    ["phone", 390, 844, true],
  ]) {
    const context = await browser.newContext({
      viewport: { width, height },
      isMobile: mobile,
      hasTouch: mobile,
      deviceScaleFactor: 1,
    });
    const page = await context.newPage();
    const response = await page.goto(url, { waitUntil: "load" });
    if (!response || !response.ok()) {
      throw new Error(`${url} answered ${response && response.status()}`);
    }
    out[name] = await page.evaluate(() => {
      const top = (sel) => {
        const e = document.querySelector(sel);
        return e ? e.getBoundingClientRect().top + window.scrollY : null;
      };
      const vw = document.documentElement.clientWidth;
      const onScreen = (e) => {
        if (!e) return false;
        const r = e.getBoundingClientRect();
        return r.width > 0 && r.left >= 0 && r.right <= vw + 0.5;
      };
      const rows = [...document.querySelectorAll("#agents tr[id^='agent-']")];
      return {
        viewport: vw,
        scroll_width: document.documentElement.scrollWidth,
        body_scroll_width: document.body.scrollWidth,
        h1: top("h1"),
        summary: top("#summary"),
        sources: top("#sources"),
        alerts: top("#alerts"),
        notifications: top("#notifications"),
        agents: top("#agents"),
        open_alert_groups: document.querySelectorAll("#alerts details[open]").length,
        alert_groups: document.querySelectorAll("#alerts details").length,
        agent_rows: rows.length,
        // Rows whose name or state is not fully on screen without scrolling sideways.
        hidden_agents: rows
          .filter((r) => !onScreen(r.querySelector(".name")) || !onScreen(r.querySelector(".state")))
          .map((r) => r.id),
        // Tables wider than their box (the box scrolls, the page does not).
        boxes_scrolling: [...document.querySelectorAll(".scroll")]
          .filter((b) => b.scrollWidth > b.clientWidth + 1)
          .map((b) => b.querySelector("table")?.id || "?"),
      };
    });
    if (screenshot && name === "desktop") {
      await page.screenshot({ path: screenshot, fullPage: false });
    }
    await context.close();
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
