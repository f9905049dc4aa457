/*
 * Passage: progressive enhancements on top of htmx.
 *
 * Load after htmx, both as plain external scripts (CSP `script-src 'self'`):
 *   <script src="/static/vendor/htmx-X.Y.Z.min.js" integrity="..." defer></script>
 *   <script src="/static/js/app.js" integrity="..." defer></script>
 * Deferred scripts run before DOMContentLoaded, which is when htmx reads its config,
 * so the settings below are in force before htmx processes the page.
 *
 * Rules for this file: no eval, no string timers, no inline handlers, no injected
 * <style>/<script>; all behaviour is attached by event delegation on document.
 */
(function () {
  'use strict';

  var doc = document;
  var HISTORY_CACHE_KEY = 'htmx-history-cache';

  // --- htmx configuration -------------------------------------------------------------
  var htmx = window.htmx;
  if (htmx && htmx.config) {
    htmx.config.allowEval = false; // no hx-on, js: values or eval'd filters (CSP has no unsafe-eval)
    htmx.config.allowScriptTags = false; // never run <script> found in swapped responses
    htmx.config.selfRequestsOnly = true; // only talk to our own origin
    htmx.config.historyCacheSize = 0; // pages hold personal data: keep no snapshots in web storage
    htmx.config.refreshOnHistoryMiss = true; // with no cache, Back does a full page load
    htmx.config.includeIndicatorStyles = false; // CSP forbids injected <style>; see passage.css
  }

  // Purge any snapshot left by an earlier htmx version or configuration.
  try {
    window.sessionStorage.removeItem(HISTORY_CACHE_KEY);
    window.localStorage.removeItem(HISTORY_CACHE_KEY);
  } catch (e) {
    // storage disabled (private mode, policy): nothing to purge
  }

  // --- CSRF: header on every state-changing htmx request ----------------------------
  // Read the token when the request is made, not at load: a swap or re-login may renew it.
  function csrfToken() {
    var meta = doc.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute('content') : null;
  }

  doc.addEventListener('htmx:configRequest', function (evt) {
    var detail = evt.detail;
    if (!detail) {
      return;
    }
    var verb = String(detail.verb || 'get').toLowerCase();
    if (verb === 'get' || verb === 'head') {
      return;
    }
    var token = csrfToken();
    if (token) {
      detail.headers['X-CSRF-Token'] = token;
    }
  });

  // --- Confirmation for plain (non-htmx) links and forms ----------------------------
  // htmx-driven elements should use hx-confirm. data-confirm covers ordinary links and
  // forms; a capturing listener runs before htmx's own listeners, so a "Cancel" also
  // stops a boosted submission. A submit button's data-confirm wins over its form's.
  function confirmed(message) {
    return !message || window.confirm(message);
  }

  function block(evt) {
    evt.preventDefault();
    evt.stopImmediatePropagation();
  }

  doc.addEventListener(
    'submit',
    function (evt) {
      var form = evt.target;
      if (!(form instanceof HTMLFormElement)) {
        return;
      }
      var submitter = evt.submitter;
      var message =
        (submitter && submitter.getAttribute('data-confirm')) || form.getAttribute('data-confirm');
      if (!confirmed(message)) {
        block(evt);
      }
    },
    true
  );

  doc.addEventListener(
    'click',
    function (evt) {
      var link = evt.target instanceof Element ? evt.target.closest('a[data-confirm]') : null;
      if (link && !confirmed(link.getAttribute('data-confirm'))) {
        block(evt);
      }
    },
    true
  );

  // --- Auto-submitting controls (e.g. the language switch) ---------------------------
  // <select name="lang" data-autosubmit> inside a form that still has a submit button
  // (so it works without JavaScript). requestSubmit() fires the submit event, so
  // validation, data-confirm and hx-boost all apply.
  doc.addEventListener('change', function (evt) {
    var control = evt.target;
    if (!(control instanceof Element) || !control.hasAttribute('data-autosubmit')) {
      return;
    }
    var form = control.form;
    if (!form) {
      return;
    }
    if (typeof form.requestSubmit === 'function') {
      form.requestSubmit();
    } else {
      form.submit();
    }
  });

  // --- Focus management after htmx swaps into #main ----------------------------------
  // Screen-reader and keyboard users otherwise stay on the (possibly removed) control
  // they activated. Focus goes to the first [data-autofocus] in the new content, else its
  // first <h1>. Focus that htmx preserved inside the new content (same id) is left alone.
  var FOCUSABLE = 'a[href], button, input, select, textarea, summary, [tabindex]';

  function focusStart(region) {
    var active = doc.activeElement;
    if (active && active !== doc.body && region.contains(active)) {
      return;
    }
    var target = region.querySelector('[data-autofocus]') || region.querySelector('h1');
    if (!target) {
      return;
    }
    if (!target.matches(FOCUSABLE)) {
      target.setAttribute('tabindex', '-1'); // focusable by script only, not in tab order
    }
    target.focus();
  }

  doc.addEventListener('htmx:afterSettle', function (evt) {
    var settled = evt.target;
    if (!(settled instanceof Element)) {
      return;
    }
    // innerHTML/outerHTML swap of #main itself, or a larger swap (hx-boost on body) that
    // contains it.
    var region = settled.id === 'main' ? settled : settled.querySelector('#main');
    if (region) {
      focusStart(region);
    }
  });
})();
