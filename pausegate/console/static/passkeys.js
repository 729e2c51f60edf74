// pausegate console: passkeys (WebAuthn). Adding one: the server's registration options, the browser's
// credential, posted back to be verified and enrolled. Approving with one: the server's statement of exactly
// this approval, the authenticator's assertion over the SHA-256 of its DSSE encoding (user verification
// required), posted with the approval. The server and the workflow verify; this script only carries bytes.
(function () {
  "use strict";

  function toBuffer(text) {
    var base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    base64 += "===".slice((base64.length + 3) % 4);
    var raw = atob(base64);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) {
      bytes[i] = raw.charCodeAt(i);
    }
    return bytes.buffer;
  }

  function toText(buffer) {
    var bytes = new Uint8Array(buffer);
    var raw = "";
    for (var i = 0; i < bytes.length; i++) {
      raw += String.fromCharCode(bytes[i]);
    }
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function say(form, text) {
    var status = form.querySelector("[data-fact=passkey-status]");
    if (status) {
      status.textContent = text;
    }
  }

  function post(url, form, fields) {
    var csrf = form.querySelector("input[name=csrf_token]").value;
    var body = new URLSearchParams(Object.assign({ csrf_token: csrf }, fields));
    return fetch(url, {
      method: "POST", credentials: "same-origin", body: body,
      headers: { "Content-Type": "application/x-www-form-urlencoded", "X-CSRF-Token": csrf }
    }).then(function (response) {
      return response.json().then(function (data) {
        if (!response.ok) {
          throw new Error(data.detail || data.code || ("refused: " + response.status));
        }
        return data;
      });
    });
  }

  function register(form) {
    say(form, "Asking your authenticator for a new passkey…");
    post(form.getAttribute("data-passkey-register"), form, {}).then(function (options) {
      options.challenge = toBuffer(options.challenge);
      options.user.id = toBuffer(options.user.id);
      (options.excludeCredentials || []).forEach(function (c) { c.id = toBuffer(c.id); });
      return navigator.credentials.create({ publicKey: options });
    }).then(function (credential) {
      var response = credential.response;
      var document = {
        id: credential.id, rawId: toText(credential.rawId), type: credential.type,
        response: {
          clientDataJSON: toText(response.clientDataJSON),
          attestationObject: toText(response.attestationObject),
          transports: response.getTransports ? response.getTransports() : []
        },
        clientExtensionResults: credential.getClientExtensionResults()
      };
      return post(form.action, form, { credential: JSON.stringify(document) });
    }).then(function (answer) {
      window.location.assign(answer.next);
    }).catch(function (error) {
      say(form, "No passkey was added: " + error.message);
    });
  }

  function approve(form) {
    // One statement for both decisions: a rejection's reason is its comment.
    var role = form.querySelector("[name=role]");
    var comment = form.querySelector("[name=comment]");
    var reason = form.querySelector("[name=reason]");
    var decision = form.querySelector("[name=decision]");
    var rejecting = decision !== null && decision.value === "reject";
    say(form, rejecting ? "Asking your passkey to sign this rejection…" : "Asking your passkey to sign this approval…");
    post(form.getAttribute("data-passkey-approve"), form, {
      role: role ? role.value : "", comment: comment ? comment.value : "", reason: reason ? reason.value : "",
      decision: rejecting ? "reject" : "approve"
    }).then(function (statement) {
      form.querySelector("[name=payload]").value = statement.payload;
      return navigator.credentials.get({
        publicKey: {
          challenge: toBuffer(statement.challenge), rpId: statement.rpId, userVerification: "required",
          timeout: 120000,
          allowCredentials: statement.allow.map(function (id) { return { type: "public-key", id: toBuffer(id) }; })
        }
      });
    }).then(function (assertion) {
      var response = assertion.response;
      form.querySelector("[name=assertion]").value = JSON.stringify({
        credentialId: toText(assertion.rawId),
        authenticatorData: toText(response.authenticatorData),
        clientDataJSON: toText(response.clientDataJSON),
        signature: toText(response.signature)
      });
      form.submit();
    }).catch(function (error) {
      say(form, (rejecting ? "Not rejected: " : "Not approved: ") + error.message);
    });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.hasAttribute("data-passkey-register")) {
      event.preventDefault();
      register(form);
    } else if (form.hasAttribute("data-passkey-approve")) {
      event.preventDefault();
      approve(form);
    }
  });
})();
