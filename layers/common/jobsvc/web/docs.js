// The API docs page: Swagger UI (vendored, served by the API itself) over /v1/openapi.json.
// Nothing is loaded from another host: no validator badge, no remote configuration.
(function () {
  "use strict";
  var root = document.getElementById("ui");
  window.ui = SwaggerUIBundle({
    url: new URL(root.getAttribute("data-openapi"), document.baseURI).href,
    dom_id: "#ui",
    deepLinking: true,
    persistAuthorization: true,
    validatorUrl: null,
    configUrl: null,
    queryConfigEnabled: false,
    tryItOutEnabled: false
  });
})();
