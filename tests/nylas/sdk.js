// The Nylas Node SDK 6.x, unchanged, against `exdisco serve` (tests/it/nylas_sdk.rs runs it).
// Configuration comes from the environment: API_SERVER, CLIENT_ID, CLIENT_SECRET, and for
// `native` EMAIL, PASSWORD, HOST. Each command prints one JSON line and exits 0, or prints
// the error and exits 1.
//
//   node sdk.js native               connect.authorize, connect.token, account, revoke
//   node sdk.js auth-url REDIRECT    urlForAuthentication
//   node sdk.js exchange CODE        exchangeCodeForToken, account, revoke
const Nylas = require('nylas');

Nylas.config({
  clientId: process.env.CLIENT_ID,
  clientSecret: process.env.CLIENT_SECRET,
  apiServer: process.env.API_SERVER,
});

async function accountThenRevoke(accessToken) {
  const account = await Nylas.with(accessToken).account.get();
  await Nylas.revoke(accessToken);
  let afterRevoke = 'still valid';
  try {
    await Nylas.with(accessToken).account.get();
  } catch (err) {
    afterRevoke = err.statusCode;
  }
  return { email: account.emailAddress, provider: account.provider, afterRevoke };
}

async function main() {
  const [command, argument] = process.argv.slice(2);
  if (command === 'native') {
    const { code } = await Nylas.connect.authorize({
      name: 'Alice Example',
      emailAddress: process.env.EMAIL,
      provider: 'exchange',
      settings: {
        username: process.env.EMAIL,
        password: process.env.PASSWORD,
        exchange_server_host: process.env.HOST,
      },
      scopes: ['email.read_only', 'calendar.read_only'],
    });
    const account = await Nylas.connect.token(code);
    const checked = await accountThenRevoke(account.accessToken);
    return { accountId: account.id, tokenEmail: account.emailAddress, ...checked };
  }
  if (command === 'auth-url') {
    return {
      url: Nylas.urlForAuthentication({
        redirectURI: argument,
        scopes: ['email.read_only', 'calendar.read_only'],
        state: 'sdk-state',
        loginHint: 'alice@example.test',
      }),
    };
  }
  if (command === 'exchange') {
    const token = await Nylas.exchangeCodeForToken(argument);
    const checked = await accountThenRevoke(token.accessToken);
    return { accountId: token.accountId, tokenType: token.tokenType, ...checked };
  }
  throw new Error(`unknown command ${command}`);
}

main().then(
  (result) => {
    console.log(JSON.stringify(result));
  },
  (err) => {
    console.error(`${err.statusCode || ''} ${err.type || ''} ${err.message}`);
    process.exit(1);
  },
);
