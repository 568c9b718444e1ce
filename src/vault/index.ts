/**
 * Vaults: where archives go (SPEC §5.3, docs/vaults.md "Targets"). One interface (vault.ts),
 * three targets, chosen by the URL's scheme.
 */
import { ApplianceVault } from "./appliance-vault.js";
import { DirectoryVault } from "./directory-vault.js";
import { S3Vault } from "./s3-vault.js";
import type { OpenVaultOptions, Vault } from "./vault.js";
import { parseVaultUrl } from "./vault-url.js";

export type { OpenVaultOptions, Vault, VaultObjectInfo } from "./vault.js";
export type { ApplianceVaultTarget, DirectoryVaultTarget, S3VaultTarget, VaultTarget } from "./vault-url.js";
export { parseVaultUrl } from "./vault-url.js";
export { checkVaultKey, checkVaultPrefix, VAULT_KEY_LENGTH_MAX } from "./vault-key.js";
export { DirectoryVault, TEMP_FILE_PREFIX } from "./directory-vault.js";
export { MULTIPART_PART_BYTES, MULTIPART_THRESHOLD_BYTES } from "./s3-vault.js";
export { VAULT_SIZE_HEADER, VAULT_TOKEN_ENVIRONMENT } from "./appliance-vault.js";

/** The vault a URL names (INVALID_ARGUMENT when the URL is not one of the three forms). Nothing is contacted before init(). */
export function openVault(url: string, options: OpenVaultOptions = {}): Vault {
  const target = parseVaultUrl(url);
  switch (target.kind) {
    case "directory":
      return new DirectoryVault(target.path, target.description);
    case "s3":
      return new S3Vault(target, options);
    case "appliance":
      return new ApplianceVault(target, options);
  }
}
