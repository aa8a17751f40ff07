// PostGraphile 4 over Milepost's tables: the peer that bench/bench_graphql.py measures Milepost against.
//
// It connects as the application role (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE: not a superuser, so
// row-level security applies) and runs every request in a transaction with `app.tenant_id` set from the
// `tenant_id` claim of an HS256 bearer token (BENCH_JWT_SECRET), as Milepost's policies expect. Settings from
// the environment: BENCH_PORT, BENCH_POOL_SIZE (10, like Milepost's pool). GET /readyz answers 200 once the
// schema is built.
"use strict";

const http = require("http");
const jwt = require("jsonwebtoken");
const { Pool } = require("pg");
const { postgraphile } = require("postgraphile");
const ConnectionFilterPlugin = require("postgraphile-plugin-connection-filter");

const secret = process.env.BENCH_JWT_SECRET;
if (!secret) {
  throw new Error("BENCH_JWT_SECRET is not set");
}
const port = Number(process.env.BENCH_PORT || 5678);
const audience = "milepost-bench-postgraphile";

const pool = new Pool({ max: Number(process.env.BENCH_POOL_SIZE || 10) });

function tenantSettings(req) {
  const header = req.headers.authorization || "";
  const token = header.startsWith("Bearer ") ? header.slice(7) : "";
  let claims;
  try {
    claims = jwt.verify(token, secret, { algorithms: ["HS256"], audience });
  } catch (error) {
    const denied = new Error(`unauthorized: ${error.message}`);
    denied.statusCode = 401;
    throw denied;
  }
  return { "app.tenant_id": String(claims.tenant_id) };
}

const graphql = postgraphile(pool, "public", {
  appendPlugins: [ConnectionFilterPlugin],
  graphileBuildOptions: { connectionFilterRelations: true },
  pgSettings: async (req) => tenantSettings(req),
  // production settings: no schema watching, no GraphiQL, no query log, only what the role may read
  watchPg: false,
  graphiql: false,
  disableQueryLog: true,
  ignoreRBAC: false,
  disableDefaultMutations: true,
  legacyRelations: "omit",
  dynamicJson: true,
  setofFunctionsContainNulls: false,
  retryOnInitFail: false,
});

const server = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/readyz") {
    graphql.getGraphQLSchema().then(
      () => {
        res.writeHead(200, { "content-type": "text/plain" });
        res.end("ok");
      },
      (error) => {
        res.writeHead(503, { "content-type": "text/plain" });
        res.end(String(error));
      },
    );
    return;
  }
  graphql(req, res);
});
server.keepAliveTimeout = 65_000;
server.listen(port, "127.0.0.1", () => {
  console.log(`postgraphile listening on http://127.0.0.1:${port}/graphql`);
});

function stop() {
  server.close(() => pool.end().then(() => process.exit(0)));
  setTimeout(() => process.exit(0), 5_000).unref();
}
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
