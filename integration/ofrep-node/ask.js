// ask.js asks flagproxy for flags through the official OpenFeature server
// SDK and its OFREP provider, as another service would. Run by
// integration/ofrep_test.go after `npm ci`:
//
//   node ask.js BASE_URL API_KEY < queries.json > answers.json
//
// queries.json: [{"context": {targetingKey, path, query, language, cookies}, "keys": ["beta", "switch:x", …]}, …]
// answers.json: [{"beta": {"value": …, "reason": …, "variant": …, "errorCode": …, "metadata": {…}}, …}, …]
// Every key is asked for as a boolean with the default false; an error gives
// the default and its errorCode, as the SDK reports it.
'use strict';

const { OpenFeature } = require('@openfeature/server-sdk');
const { OFREPProvider } = require('@openfeature/ofrep-provider');

async function main() {
  const [baseUrl, apiKey] = process.argv.slice(2);
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const queries = JSON.parse(Buffer.concat(chunks).toString('utf8'));

  const headers = apiKey ? [['Authorization', `Bearer ${apiKey}`]] : [];
  await OpenFeature.setProviderAndWait(new OFREPProvider({ baseUrl, headers }));
  const client = OpenFeature.getClient();

  const answers = [];
  for (const q of queries) {
    const out = {};
    for (const key of q.keys) {
      const d = await client.getBooleanDetails(key, false, q.context);
      out[key] = { value: d.value, reason: d.reason, variant: d.variant, errorCode: d.errorCode, metadata: d.flagMetadata };
    }
    answers.push(out);
  }
  process.stdout.write(JSON.stringify(answers));
  await OpenFeature.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
