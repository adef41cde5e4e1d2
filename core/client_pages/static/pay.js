// The card step: Stripe.js collects the card on the clinic's connected account and runs
// its own confirm flow (3-D Secure included); the booking is confirmed by the webhook.
(function () {
  "use strict";
  var form = document.getElementById("card-form");
  if (!form || typeof Stripe === "undefined") { return; }
  var stripe = Stripe(form.dataset.key, { stripeAccount: form.dataset.account });
  var card = stripe.elements().create("card");
  card.mount("#card-element");
  var errors = document.getElementById("card-errors");
  var submit = document.getElementById("card-submit");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    submit.disabled = true;  // one click, one payment: the intent is the same on every call anyway
    errors.textContent = "";
    var confirm = form.dataset.kind === "payment" ? stripe.confirmCardPayment : stripe.confirmCardSetup;
    confirm.call(stripe, form.dataset.secret, {
      payment_method: { card: card },
      return_url: form.dataset.return
    }).then(function (result) {
      if (result.error) {
        errors.textContent = result.error.message + " Nothing was charged; you can try another card.";
        submit.disabled = false;
        return;
      }
      window.location.assign(form.dataset.return);
    });
  });
})();
