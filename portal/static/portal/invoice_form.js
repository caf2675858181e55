/* The invoice form, as staff expect it:
 * - choosing an item fills the line's unit price, tax rate, description (if empty) and a
 *   quantity of 1 (if empty), from the admin's item defaults (JSON); a field staff changed
 *   after choosing the item is left as they typed it;
 * - each line's amount and the invoice's subtotal, tax and total follow what is typed.
 *
 * The arithmetic mirrors Invoice.compute_totals exactly, in integers (BigInt), never in
 * floating point: a line's amount is quantity x unit price rounded half up (away from zero)
 * to the cent; tax is worked out per rate on the sum of the lines at that rate, then rounded
 * half up to the cent; discounts subtract, description and subtotal lines add nothing.
 * Nothing is recomputed until staff change a line, so an invoice shows QuickBooks' own totals
 * until then. The server computes again on save; these figures are a preview.
 */
"use strict";
{
  const PLACES = 7; // quantities, unit prices and percents are read to 7 places
  const UNIT = 10n ** BigInt(PLACES);

  // "12.5" -> 125000000n (scaled by 10^7); null for anything that is not a plain decimal.
  function parse(text) {
    const match = /^\s*([+-]?)(\d*)(?:\.(\d*))?\s*$/.exec(text || "");
    if (!match || (match[2] === "" && !match[3])) return null;
    const fraction = match[3] || "";
    if (fraction.length > PLACES) return null;
    const digits = (match[2] || "0") + fraction.padEnd(PLACES, "0");
    const value = BigInt(digits);
    return match[1] === "-" ? -value : value;
  }

  // n / d rounded half away from zero (Python's ROUND_HALF_UP), d > 0.
  function divide(n, d) {
    const negative = n < 0n;
    const magnitude = negative ? -n : n;
    const rounded = (2n * magnitude + d) / (2n * d);
    return negative ? -rounded : rounded;
  }

  // Cents (BigInt) as "1234.50" / "-0.05".
  function money(cents) {
    const negative = cents < 0n;
    const text = (negative ? -cents : cents).toString().padStart(3, "0");
    return (negative ? "-" : "") + text.slice(0, -2) + "." + text.slice(-2);
  }

  // "1234.50" (as the admin shows a read-only amount) -> cents; 0n when unreadable.
  function cents(text) {
    const value = parse((text || "").replace(/,/g, ""));
    return value === null ? 0n : divide(value, UNIT / 100n);
  }

  function config() {
    const node = document.getElementById("ll-invoice-form");
    return node ? JSON.parse(node.textContent) : null;
  }

  function field(row, name) {
    return row.querySelector(`[name$="-${name}"]`);
  }

  function lineRows(group) {
    return Array.from(group.querySelectorAll("tr.form-row")).filter(
      (row) => !row.classList.contains("empty-form") && !/-empty$/.test(row.id)
    );
  }

  // The line's amount in cents, or null when the line does not count (deleted, blank).
  function lineAmount(row) {
    const remove = field(row, "DELETE");
    if (remove && remove.checked) return null;
    const kindNode = row.querySelector("[data-kind]");
    const kind = kindNode ? kindNode.dataset.kind : "item";
    const cell = row.querySelector("td.field-amount p, td.field-amount .readonly");
    if (cell && row.dataset.statedAmount === undefined) {
      row.dataset.statedAmount = cell.textContent.trim();
    }
    let amount = cents(row.dataset.statedAmount);
    if (kind === "item") {
      const item = field(row, "item");
      const quantity = parse(field(row, "quantity")?.value);
      const price = parse(field(row, "unit_price")?.value);
      if (quantity !== null && price !== null) {
        amount = divide(quantity * price, UNIT * UNIT / 100n);
      } else if (!row.querySelector('[name$="-id"]')?.value && !(item && item.value)) {
        return null; // a new line not filled in yet
      }
      if (cell) cell.textContent = money(amount);
    }
    return { kind, amount, rate: field(row, "tax_rate")?.value || "" };
  }

  function recompute(group, settings) {
    let subtotal = 0n;
    const taxable = new Map();
    for (const row of lineRows(group)) {
      const line = lineAmount(row);
      if (line === null) continue;
      if (line.kind === "item" || line.kind === "bundle") subtotal += line.amount;
      if (line.kind === "discount") subtotal -= line.amount;
      if (line.rate) taxable.set(line.rate, (taxable.get(line.rate) || 0n) + line.amount);
    }
    let tax = 0n;
    for (const [rate, amount] of taxable) {
      const percent = parse(settings.taxRates[rate]);
      if (percent === null) continue;
      // cents x percent (10^7) / 100 -> cents, rounded once per rate.
      tax += divide(amount * percent, UNIT * 100n);
    }
    const shown = { subtotal, tax_total: tax, total: subtotal + tax };
    const paid = document.querySelector(".field-amount_paid .readonly");
    if (paid) shown.balance_due = shown.total - cents(paid.textContent);
    for (const [name, value] of Object.entries(shown)) {
      const node = document.querySelector(`.field-${name} .readonly`);
      if (node) node.textContent = money(value);
    }
    const total = document.querySelector(".field-total .readonly");
    if (total && !document.getElementById("ll-totals-note")) {
      const note = document.createElement("div");
      note.id = "ll-totals-note";
      note.className = "help";
      note.textContent = "Worked out from the lines as typed; saved when you save.";
      total.after(note);
    }
  }

  // Fill a line from its item's defaults, leaving what staff typed since they chose it.
  async function fillFromItem(row, itemId, settings, group) {
    const picked = String(Date.now() + Math.random());
    row.dataset.picked = picked;
    for (const input of row.querySelectorAll("input, select, textarea")) {
      delete input.dataset.touched;
    }
    if (!itemId) return;
    let defaults;
    try {
      const url = settings.itemDefaultsUrl.replace(/\/0\//, `/${encodeURIComponent(itemId)}/`);
      const response = await fetch(url, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (!response.ok) return;
      defaults = await response.json();
    } catch (error) {
      return; // no defaults: the line stays as typed, and the server fills the price on save
    }
    if (row.dataset.picked !== picked) return; // another item was chosen meanwhile
    const set = (name, value, onlyIfEmpty) => {
      const input = field(row, name);
      if (!input || input.disabled || input.dataset.touched) return;
      if (onlyIfEmpty && input.value) return;
      input.value = value;
    };
    set("unit_price", defaults.unit_price, false);
    set("quantity", "1", true);
    set("description", defaults.description || "", true);
    if (!defaults.taxable) set("tax_rate", "", false);
    else if (defaults.tax_rate !== null) set("tax_rate", String(defaults.tax_rate), false);
    recompute(group, settings);
  }

  function start() {
    const settings = config();
    const group = document.getElementById("lines-group");
    if (!settings || !group) return;
    const typed = (event) => {
      const target = event.target;
      if (!target.name || /-item$/.test(target.name)) return;
      const row = target.closest("tr.form-row");
      if (row && row.dataset.picked) target.dataset.touched = row.dataset.picked;
      recompute(group, settings);
    };
    group.addEventListener("input", typed);
    group.addEventListener("change", typed);
    // The item is an autocomplete (select2), which announces a choice through jQuery.
    const $ = window.django && window.django.jQuery;
    // The admin announces every related select as changed when the page loads (to set its
    // edit links): only a new choice fills the line.
    for (const select of group.querySelectorAll('select[name$="-item"]')) {
      select.dataset.chosen = select.value;
    }
    const chosen = (event) => {
      const select = event.target;
      if (select.value === (select.dataset.chosen || "")) return;
      select.dataset.chosen = select.value;
      const row = select.closest("tr.form-row");
      if (row) fillFromItem(row, select.value, settings, group);
    };
    if ($) $(group).on("change", 'select[name$="-item"]', chosen);
    else {
      group.addEventListener("change", (event) => {
        if (/-item$/.test(event.target.name || "")) chosen(event);
      });
    }
    // A line added or removed with the inline's links changes the totals too.
    document.addEventListener("formset:removed", () => recompute(group, settings));
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
}
