// The authorization server of the SMART launch tests: oauth2-mock-server on 127.0.0.1, with
// hooks a test steers through a JSON file (MOCK_CONFIG), read afresh on every request:
//   patient      the token response's `patient` (null: left out)
//   fhirUser     the id_token's fhirUser claim
//   idToken      claims that overwrite the id_token's (e.g. a wrong nonce or audience)
//   scope        the granted scope (default: what the authorize request asked)
//   appContext   added to the token response when set
//   basic        "client_id:secret" the token request must authenticate with (HTTP Basic)
// Each authorize request's query is appended to MOCK_LOG (one JSON line) for the tests to read.
// Prints "READY <issuer url>" once listening.
import { readFileSync, appendFileSync } from "node:fs";
import { OAuth2Server } from "oauth2-mock-server";

const configPath = process.env.MOCK_CONFIG;
const logPath = process.env.MOCK_LOG;
const config = () => JSON.parse(readFileSync(configPath, "utf8"));
const scopes = new Map();

const server = new OAuth2Server();
await server.issuer.keys.generate("RS256");

server.service.on("beforeAuthorizeRedirect", (redirect, req) => {
  appendFileSync(logPath, JSON.stringify(req.query) + "\n");
  const code = redirect.url.searchParams.get("code");
  if (code) scopes.set(code, req.query.scope);
});

server.service.on("beforeTokenSigning", (token, req) => {
  const c = config();
  if (!("scope" in token.payload)) {
    // The id_token (the access token carries a scope).
    if (c.fhirUser) token.payload.fhirUser = c.fhirUser;
    Object.assign(token.payload, c.idToken || {});
  }
});

server.service.on("beforeResponse", (response, req) => {
  const c = config();
  if (c.basic) {
    const expected = "Basic " + Buffer.from(c.basic).toString("base64");
    if (req.headers.authorization !== expected) {
      response.statusCode = 401;
      response.body = { error: "invalid_client" };
      return;
    }
  }
  const asked = scopes.get(req.body.code);
  scopes.delete(req.body.code);
  response.body.scope = c.scope ?? asked ?? "";
  if (c.patient) response.body.patient = c.patient;
  if (c.appContext) response.body.appContext = c.appContext;
});

await server.start(0, "127.0.0.1");
// The address, not "localhost": the app connects to exactly what the documents name.
server.issuer.url = `http://127.0.0.1:${server.address().port}`;
console.log("READY " + server.issuer.url);
process.on("SIGTERM", async () => {
  await server.stop();
  process.exit(0);
});
