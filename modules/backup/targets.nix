# The backup targets. A target is exactly one kind, written
# `targets.<name>.<kind> = { ... }` (types.attrTag, like the secret loader's
# transforms), and has that kind's options only; what a kind cannot work
# without is an option with no default, so leaving it out is reported by
# the module system under the option's own name. Each kind also says which
# credential files it loads and how it is written in the manifest.
#
# The old flat shape (`{ kind = "s3"; bucket = ...; }`) is still accepted:
# it is converted to `{ s3 = { bucket = ...; }; }` and the module warns,
# naming the target and how to write it.
{
  config,
  lib,
  pkgs,
  chainstead,
}:
let
  inherit (lib) mkOption types literalExpression;
  inherit (config.services.chainstead) secrets;
  inherit (import ./names.nix) credDir;

  nullOrStr = types.nullOr types.str;
  secretFile = chainstead.mkSecretFileOption;
  requiredSecretFile =
    description:
    mkOption {
      type = chainstead.secretFileType;
      inherit description;
    };
  # The secret loader's OpenBao setting, or `fallback` without one.
  loaderOr = attr: fallback: if secrets.openbao != null then secrets.openbao.${attr} else fallback;
  loaderText = attr: literalExpression "services.chainstead.secrets.openbao.${attr}";

  # Options of every kind.
  common = {
    options = {
      encrypt = mkOption {
        type = types.bool;
        default = false;
        description = ''
          Encrypt what goes to this target with age for
          {option}`services.chainstead.backup.encryption.recipients`, on top
          of LND's own encryption (config snapshots have no other).
        '';
      };
      flatShape = mkOption {
        type = types.bool;
        default = false;
        internal = true;
        visible = false;
        description = "Set when the target was written in the old flat shape (for the warning).";
      };
    };
  };

  # Per kind: its description, its options (a module), its credential
  # files (`what` -> file or null) and its manifest fields, given the paths
  # the manifest names those credentials by.
  kinds = {
    directory = {
      description = "A folder, usually on a mounted disk.";
      module.options.path = mkOption {
        type = types.str;
        example = "/mnt/pbs-datastore/lnd-backup";
        description = ''
          Folder for the versions and the `latest` pointer. It must exist
          (the mounted disk's folder): it is not created, so a missing disk
          fails this target instead of filling the root file system.
        '';
      };
      credentials = _: { };
      render = _: t: { inherit (t) path; };
    };

    s3 = {
      description = "An S3 bucket (AWS, Garage, MinIO, ...).";
      module.options = {
        endpoint = mkOption {
          type = types.str;
          example = "https://s3.example.net";
          description = "Endpoint URL; requests are path-style.";
        };
        bucket = mkOption {
          type = types.str;
          description = "Bucket name.";
        };
        region = mkOption {
          type = types.str;
          default = "us-east-1";
          example = "garage";
          description = "Region the server signs for (Garage: `garage`).";
        };
        prefix = mkOption {
          type = types.str;
          default = "";
          example = "node1/lnd";
          description = "Key prefix inside the bucket.";
        };
        accessKeyIdFile = requiredSecretFile "File holding the access key id.";
        secretAccessKeyFile = requiredSecretFile "File holding the secret access key.";
        allowHttp = mkOption {
          type = types.bool;
          default = false;
          description = "Allow a plain-http endpoint other than loopback (a trusted network only).";
        };
      };
      credentials = t: {
        access-key-id = t.accessKeyIdFile;
        secret-access-key = t.secretAccessKeyFile;
      };
      render = c: t: {
        inherit (t)
          endpoint
          bucket
          region
          prefix
          ;
        access_key_id_file = c.access-key-id;
        secret_access_key_file = c.secret-access-key;
        allow_http = t.allowHttp;
      };
    };

    webdav = {
      description = "A WebDAV folder (Nextcloud, ...).";
      module.options = {
        url = mkOption {
          type = types.str;
          example = "https://cloud.example.net/remote.php/dav/files/alice/lnd-backup";
          description = "Folder URL; missing folders are created.";
        };
        user = mkOption {
          type = types.str;
          description = "User name.";
        };
        passwordFile = requiredSecretFile "File holding the password.";
      };
      credentials = t: { password = t.passwordFile; };
      render = c: t: {
        inherit (t) url user;
        password_file = c.password;
      };
    };

    openbao = {
      description = "A KV secret in OpenBao (each push a version with KV v2).";
      module = {
        options = {
          address = mkOption {
            type = types.str;
            # No default without the secret loader's OpenBao: then it is required.
            defaultText = loaderText "address";
            description = "OpenBao address; the secret loader's by default.";
          };
          caFile = mkOption {
            type = types.nullOr types.str;
            default = loaderOr "caFile" null;
            defaultText = loaderText "caFile";
            description = "CA certificate (PEM) of OpenBao's TLS certificate.";
          };
          roleIdFile = mkOption {
            type = types.nullOr chainstead.secretFileType;
            default = loaderOr "roleIdFile" null;
            defaultText = loaderText "roleIdFile";
            description = "AppRole role_id file; the secret loader's login by default.";
          };
          secretIdFile = mkOption {
            type = types.nullOr chainstead.secretFileType;
            default = loaderOr "secretIdFile" null;
            defaultText = loaderText "secretIdFile";
            description = "AppRole secret_id file; the secret loader's login by default.";
          };
          approleMount = mkOption {
            type = types.str;
            default = loaderOr "approleMount" "approle";
            defaultText = loaderText "approleMount";
            description = "Mount of the AppRole auth method.";
          };
          tokenFile = secretFile "Token file, instead of AppRole.";
          mount = mkOption {
            type = types.str;
            default = loaderOr "kvMount" "secret";
            defaultText = loaderText "kvMount";
            description = "KV mount.";
          };
          secretPath = mkOption {
            type = types.str;
            default = "chainstead/lnd/channel-backup";
            description = "Secret path in the mount; snapshots go to `<secretPath>-snapshot`.";
          };
          kvVersion = mkOption {
            type = types.enum [
              1
              2
            ];
            default = 2;
            description = "KV version of the mount: 2 keeps every push as a version.";
          };
        };
        config.address = lib.mkIf (secrets.openbao != null) (lib.mkDefault secrets.openbao.address);
      };
      credentials =
        t:
        if t.tokenFile != null then
          { token = t.tokenFile; }
        else
          {
            role-id = t.roleIdFile;
            secret-id = t.secretIdFile;
          };
      render = c: t: {
        inherit (t) address mount;
        ca_file = t.caFile;
        path = t.secretPath;
        kv_version = t.kvVersion;
        auth =
          if t.tokenFile != null then
            { token.token_file = c.token; }
          else
            {
              approle = {
                mount = t.approleMount;
                role_id_file = c.role-id;
                secret_id_file = c.secret-id;
              };
            };
      };
    };

    pbs = {
      description = "A Proxmox Backup Server datastore.";
      module.options = {
        repository = mkOption {
          type = types.str;
          example = "lnd-backup@pbs!node1@pbs.home.arpa:store1";
          description = "`[[user@realm[!token]@]server[:port]:]datastore`.";
        };
        namespace = mkOption {
          type = nullOrStr;
          default = null;
          description = "Namespace (`--ns`).";
        };
        fingerprint = mkOption {
          type = nullOrStr;
          default = null;
          description = "SHA-256 fingerprint of the server certificate (`PBS_FINGERPRINT`), unless it is signed by a trusted CA.";
        };
        passwordFile = requiredSecretFile "File holding the password of the user or API token in {option}`repository`.";
        backupId = mkOption {
          type = types.str;
          default = "${config.networking.hostName}-lnd";
          defaultText = literalExpression ''"''${networking.hostName}-lnd"'';
          description = "Backup id (`--backup-id`); letters, digits, `-` and `_`.";
        };
        clientPackage = lib.mkPackageOption pkgs "proxmox-backup-client" { };
      };
      credentials = t: { password = t.passwordFile; };
      render = c: t: {
        inherit (t) repository namespace fingerprint;
        password_file = c.password;
        backup_id = t.backupId;
        client_binary = lib.getExe t.clientPackage;
      };
    };
  };

  tagged = types.attrTag (
    lib.mapAttrs (
      _: k:
      mkOption {
        inherit (k) description;
        type = types.submodule [
          common
          k.module
        ];
      }
    ) kinds
  );

  # The old flat shape: `kind` moves out, the rest into the kind.
  flat = types.addCheck types.attrs (v: builtins.isString (v.kind or null)) // {
    description = "attribute set with `kind` (the old flat shape)";
  };
  fromFlat = v: {
    ${v.kind} = removeAttrs v [ "kind" ] // {
      flatShape = true;
    };
  };

  kindOf = t: lib.head (lib.attrNames t);
  settingsOf = t: t.${kindOf t};
  credentialFiles = t: kinds.${kindOf t}.credentials (settingsOf t);
in
{
  type = types.coercedTo flat fromFlat tagged;

  inherit kindOf settingsOf;

  # A target's credential files: their systemd credential id and file.
  credentials =
    name: t:
    lib.filter (c: c.file != null) (
      lib.mapAttrsToList (what: file: {
        id = "${name}-${what}";
        inherit file;
      }) (credentialFiles t)
    );

  # A target's manifest entry. `forService`: credentials by their systemd
  # credential path; otherwise the original files (the operator's manifest).
  render =
    forService: name: t:
    let
      s = settingsOf t;
      paths = lib.mapAttrs (
        what: file:
        if file == null then
          null
        else if forService then
          "${credDir}/${name}-${what}"
        else
          file
      ) (credentialFiles t);
    in
    {
      inherit name;
      kind = kindOf t;
      inherit (s) encrypt;
    }
    // kinds.${kindOf t}.render paths s;

  # The folders of the directory targets.
  directoryPaths =
    targets:
    lib.mapAttrsToList (_: t: t.directory.path) (lib.filterAttrs (_: t: t ? directory) targets);

  # Warnings for targets written in the old flat shape.
  flatShapeWarnings =
    targets:
    lib.concatLists (
      lib.mapAttrsToList (
        name: t:
        lib.optional (settingsOf t).flatShape "services.chainstead.backup.targets.${name} uses the old flat shape (`kind = \"${kindOf t}\"; ...`), accepted for now: write it as `targets.${name}.${kindOf t} = { ... };` with the same options and no `kind` (docs/backup.md)."
      ) targets
    );
}
