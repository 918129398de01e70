// The Nylas Node SDK 6.x, unchanged, against `exdisco serve` (tests/it/nylas_sdk.rs runs it).
// Configuration comes from the environment: API_SERVER, CLIENT_ID, CLIENT_SECRET, and for
// `native` EMAIL, PASSWORD, HOST. Each command prints one JSON line and exits 0, or prints
// the error and exits 1.
//
//   node sdk.js native               connect.authorize, connect.token, account, revoke
//   node sdk.js auth-url REDIRECT    urlForAuthentication
//   node sdk.js exchange CODE        exchangeCodeForToken, account, revoke
//   node sdk.js manage               accounts.list, accounts.find, tokenInfo, revokeAll,
//                                    upgrade, accounts.delete
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

// Native authentication of the test mailbox with `scopes`; the code.
async function authorize(scopes) {
  const { code } = await Nylas.connect.authorize({
    name: 'Alice Example',
    emailAddress: process.env.EMAIL,
    provider: 'exchange',
    settings: {
      username: process.env.EMAIL,
      password: process.env.PASSWORD,
      exchange_server_host: process.env.HOST,
    },
    scopes,
  });
  return code;
}

async function main() {
  const [command, argument] = process.argv.slice(2);
  if (command === 'native') {
    const code = await authorize(['email.read_only', 'calendar.read_only']);
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
  if (command === 'manage') {
    const code = await authorize(['email.read_only']);
    const token = await Nylas.connect.token(code);
    const statusOf = async (promise) => {
      try {
        await promise;
        return 200;
      } catch (err) {
        return err.statusCode;
      }
    };
    const list = await Nylas.accounts.list();
    const found = await Nylas.accounts.find(token.id);
    const info = await found.tokenInfo(token.accessToken);
    await found.revokeAll(token.accessToken);
    const keptByRevokeAll = await statusOf(Nylas.with(token.accessToken).account.get());
    const upgrade = await statusOf(found.upgrade());
    await found.revokeAll();
    const afterRevokeAll = await statusOf(Nylas.with(token.accessToken).account.get());
    const infoAfter = await found.tokenInfo(token.accessToken);
    await Nylas.accounts.delete(token.id);
    const findAfterDelete = await statusOf(Nylas.accounts.find(token.id));
    return {
      listed: list.map((a) => ({ id: a.id, email: a.emailAddress, provider: a.provider })),
      found: { id: found.id, email: found.emailAddress, authenticationType: found.authenticationType },
      info: { scopes: info.scopes, state: info.state },
      keptByRevokeAll,
      upgrade,
      afterRevokeAll,
      stateAfter: infoAfter.state,
      findAfterDelete,
    };
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
