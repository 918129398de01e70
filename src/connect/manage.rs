//! The platform's account management, for an application that proved itself with its secret:
//! its accounts listed and shown, one deleted (its sealed secret and tokens with it), its
//! tokens revoked but one, and what a token is. A client sees only its own accounts.

use super::{AccountId, ClientId, Connect, Error};
use crate::account::Account;
use crate::secrets;
use crate::store::TokenInfo;

impl Connect {
    /// `client`'s accounts, oldest first, `limit` (at most 1,000) from `offset`.
    pub async fn accounts(
        &self,
        client: &ClientId,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<Account>, Error> {
        let limit = limit.clamp(1, MAX_LIST);
        Ok(self
            .store
            .list_accounts(client.to_string(), offset, limit)
            .await?)
    }

    /// `client`'s account `account`; another client's is not found.
    pub async fn account_of(
        &self,
        client: &ClientId,
        account: &AccountId,
    ) -> Result<Account, Error> {
        self.store
            .find_account(account.to_string())
            .await?
            .filter(|a| a.client_id == *client)
            .ok_or(Error::AccountNotFound)
    }

    /// Deletes `client`'s account `account`: its row with the sealed secret, its tokens, and
    /// the codes that would create it again.
    pub async fn delete_account(
        &self,
        client: &ClientId,
        account: &AccountId,
    ) -> Result<(), Error> {
        let deleted = self
            .store
            .delete_account(client.to_string(), account.to_string())
            .await?;
        if deleted {
            Ok(())
        } else {
            Err(Error::AccountNotFound)
        }
    }

    /// Revokes every token of `client`'s account `account` but `keep`; how many.
    pub async fn revoke_all(
        &self,
        client: &ClientId,
        account: &AccountId,
        keep: Option<&str>,
    ) -> Result<usize, Error> {
        self.account_of(client, account).await?;
        let keep = keep.filter(|t| !t.is_empty()).map(secrets::hash_token);
        Ok(self
            .store
            .revoke_all(client.to_string(), account.to_string(), keep)
            .await?)
    }

    /// What `token` is for `client`'s account `account`: its account's scopes, when it was
    /// made, whether it is still good. A token of another account is `invalid_token`.
    pub async fn token_info(
        &self,
        client: &ClientId,
        account: &AccountId,
        token: &str,
    ) -> Result<(Account, TokenInfo), Error> {
        let found = self.account_of(client, account).await?;
        let info = self
            .store
            .token_info(
                client.to_string(),
                account.to_string(),
                secrets::hash_token(token),
                self.now(),
            )
            .await?
            .ok_or(Error::BadToken)?;
        Ok((found, info))
    }
}

/// Accounts one list answers at most.
const MAX_LIST: u64 = 1000;
