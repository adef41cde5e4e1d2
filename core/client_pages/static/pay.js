// The card step: Stripe.js collects the card on the clinic's connected account; the bank's
// own check (3-D Secure) runs in Stripe.js; the booking is confirmed from Stripe's answer.
//
// A deposit: Stripe.js makes a card token (the card number never reaches this site), the
// server adds it to the payment and confirms it, and Stripe.js runs 3-D Secure when the bank
// asks. A card saved to hold the booking: Stripe.js confirms the SetupIntent itself.
(function () {
  "use strict";
  var form = document.getElementById("card-form");
  if (!form || typeof Stripe === "undefined") { return; }
  var stripe = Stripe(form.dataset.key, { stripeAccount: form.dataset.account });
  var card = stripe.elements().create("card");
  card.mount("#card-element");
  var errors = document.getElementById("card-errors");
  var submit = document.getElementById("card-submit");
  var status = document.getElementById("card-status");

  function failed(message) {
    errors.textContent = message + " Nothing was charged; you can try another card.";
    status.textContent = "";
    submit.disabled = false;
    errors.focus();
  }

  function done() { window.location.assign(form.dataset.return); }

  function payDeposit() {
    return stripe.createToken(card).then(function (made) {
      if (made.error) { throw made.error; }
      return fetch(form.dataset.card, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": form.dataset.csrf },
        body: JSON.stringify({ card_token: made.token.id })
      });
    }).then(function (response) {
      return response.json().then(function (answer) {
        if (!response.ok) { throw { message: answer.detail || answer.title }; }
        return answer;
      });
    }).then(function (answer) {
      if (answer.status !== "requires_action") { return done(); }
      // The bank asks the client to approve the payment: Stripe.js shows its check.
      return stripe.confirmCardPayment(answer.client_secret).then(function (result) {
        if (result.error) { throw result.error; }
        done();
      });
    });
  }

  function saveCard() {
    return stripe.confirmCardSetup(form.dataset.secret, {
      payment_method: { card: card }
    }).then(function (result) {
      if (result.error) { throw result.error; }
      done();
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    submit.disabled = true;  // one click, one payment: the server's keys make a repeat harmless anyway
    errors.textContent = "";
    status.textContent = "Checking your card…";
    (form.dataset.kind === "payment" ? payDeposit() : saveCard()).catch(function (error) {
      failed((error && error.message) || "The card could not be used.");
    });
  });
})();
