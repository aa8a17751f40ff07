// Runs graphql-http's server audit (the GraphQL-over-HTTP spec's own conformance checks) against a live
// Milepost and prints one JSON array of results on stdout. Every request carries the bearer token given in
// MILEPOST_TOKEN: /graphql refuses anonymous callers before any GraphQL runs.
//
//   MILEPOST_GRAPHQL_URL=http://127.0.0.1:8123/graphql MILEPOST_TOKEN=... node audit.mjs
import { auditServer } from 'graphql-http';

const url = process.env.MILEPOST_GRAPHQL_URL;
const token = process.env.MILEPOST_TOKEN;
if (!url || !token) {
  console.error('set MILEPOST_GRAPHQL_URL and MILEPOST_TOKEN');
  process.exit(2);
}

function withToken(input, init = {}) {
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${token}`);
  return fetch(input, { ...init, headers });
}

const results = await auditServer({ url, fetchFn: withToken });
const report = [];
for (const result of results) {
  const entry = { id: result.id, name: result.name, status: result.status };
  if (result.status !== 'ok') {
    entry.reason = result.reason;
    entry.responseStatus = result.response.status;
    try {
      entry.responseBody = (await result.response.text()).slice(0, 500);
    } catch (error) {
      entry.responseBody = `(body already read: ${error.message})`;
    }
  }
  report.push(entry);
}
console.log(JSON.stringify(report, null, 2));
