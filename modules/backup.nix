# chainstead-backup: LND's channel.backup off the host within a second of
# every change, to every configured target, plus snapshots of a few small
# files. The module renders two manifests:
#   - the service's, naming credentials by their systemd credential path
#     (/run/credentials/chainstead-backup.service/<id>), without the age
#     identity (the pusher only encrypts);
#   - the operator's, /etc/chainstead/backup.json, naming the original files
#     (readable by root) and the age identity, for `status`, `verify` and
#     `restore` (docs/backup.md).
# Both are checked with `chainstead-backup validate` when the system is built.
#
# LND makes its network directory 0700; the pusher reads it through ACLs that
# grant its user traversal down to the directory and read+list on it, never
# write (LND writes channel.backup 0644 under its UMask=0022). The ACLs are
# applied by the unit's root ExecStartPre, after LND's disk is mounted.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    mkOption
    mkEnableOption
    mkIf
    types
    literalExpression
    ;
  chainstead = import ./lib.nix { inherit lib; };
  cfg = config.services.chainstead.backup;
  inherit (config.services.chainstead) lnd secrets;

  user = "chainstead-backup";
  unit = "chainstead-backup";
  stateDir = "/var/lib/chainstead/backup";
  credDir = "/run/credentials/${unit}.service";
  metricsGroup = "chainstead-metrics";

  nullOrStr = types.nullOr types.str;
  secretFile = chainstead.mkSecretFileOption;

  targetType = types.submodule (
    _:
    {
      options = {
        kind = mkOption {
          type = types.enum [
            "directory"
            "s3"
            "webdav"
            "openbao"
            "pbs"
          ];
          description = "What the target is; the options of that kind below apply.";
        };
        encrypt = mkOption {
          type = types.bool;
          default = false;
          description = ''
            Encrypt what goes to this target with age for
            {option}`services.chainstead.backup.encryption.recipients`, on top
            of LND's own encryption (config snapshots have no other).
          '';
        };

        # directory
        path = mkOption {
          type = nullOrStr;
          default = null;
          example = "/mnt/pbs-datastore/lnd-backup";
          description = ''
            (directory) Folder for the versions and the `latest` pointer. It
            must exist (the mounted disk's folder): it is not created, so a
            missing disk fails this target instead of filling the root file
            system.
          '';
        };

        # s3
        endpoint = mkOption {
          type = nullOrStr;
          default = null;
          example = "https://s3.example.net";
          description = "(s3) Endpoint URL; requests are path-style.";
        };
        bucket = mkOption {
          type = nullOrStr;
          default = null;
          description = "(s3) Bucket name.";
        };
        region = mkOption {
          type = types.str;
          default = "us-east-1";
          example = "garage";
          description = "(s3) Region the server signs for (Garage: `garage`).";
        };
        prefix = mkOption {
          type = types.str;
          default = "";
          example = "node1/lnd";
          description = "(s3) Key prefix inside the bucket.";
        };
        accessKeyIdFile = secretFile "(s3) File holding the access key id.";
        secretAccessKeyFile = secretFile "(s3) File holding the secret access key.";
        allowHttp = mkOption {
          type = types.bool;
          default = false;
          description = "(s3) Allow a plain-http endpoint other than loopback (a trusted network only).";
        };

        # webdav
        url = mkOption {
          type = nullOrStr;
          default = null;
          example = "https://cloud.example.net/remote.php/dav/files/alice/lnd-backup";
          description = "(webdav) Folder URL; missing folders are created.";
        };
        user = mkOption {
          type = nullOrStr;
          default = null;
          description = "(webdav) User name.";
        };
        passwordFile = secretFile "(webdav, pbs) File holding the password (PBS: of the user or API token in {option}`repository`).";

        # openbao
        address = mkOption {
          type = nullOrStr;
          default = if secrets.openbao != null then secrets.openbao.address else null;
          defaultText = literalExpression "services.chainstead.secrets.openbao.address";
          description = "(openbao) OpenBao address; the secret loader's by default.";
        };
        caFile = mkOption {
          type = types.nullOr types.str;
          default = if secrets.openbao != null then secrets.openbao.caFile else null;
          defaultText = literalExpression "services.chainstead.secrets.openbao.caFile";
          description = "(openbao) CA certificate (PEM) of OpenBao's TLS certificate.";
        };
        roleIdFile = mkOption {
          type = types.nullOr chainstead.secretFileType;
          default = if secrets.openbao != null then secrets.openbao.roleIdFile else null;
          defaultText = literalExpression "services.chainstead.secrets.openbao.roleIdFile";
          description = "(openbao) AppRole role_id file; the secret loader's login by default.";
        };
        secretIdFile = mkOption {
          type = types.nullOr chainstead.secretFileType;
          default = if secrets.openbao != null then secrets.openbao.secretIdFile else null;
          defaultText = literalExpression "services.chainstead.secrets.openbao.secretIdFile";
          description = "(openbao) AppRole secret_id file; the secret loader's login by default.";
        };
        approleMount = mkOption {
          type = types.str;
          default = if secrets.openbao != null then secrets.openbao.approleMount else "approle";
          defaultText = literalExpression "services.chainstead.secrets.openbao.approleMount";
          description = "(openbao) Mount of the AppRole auth method.";
        };
        tokenFile = secretFile "(openbao) Token file, instead of AppRole.";
        mount = mkOption {
          type = types.str;
          default = if secrets.openbao != null then secrets.openbao.kvMount else "secret";
          defaultText = literalExpression "services.chainstead.secrets.openbao.kvMount";
          description = "(openbao) KV mount.";
        };
        secretPath = mkOption {
          type = types.str;
          default = "chainstead/lnd/channel-backup";
          description = "(openbao) Secret path in the mount; snapshots go to `<secretPath>-snapshot`.";
        };
        kvVersion = mkOption {
          type = types.enum [
            1
            2
          ];
          default = 2;
          description = "(openbao) KV version of the mount: 2 keeps every push as a version.";
        };

        # pbs
        repository = mkOption {
          type = nullOrStr;
          default = null;
          example = "lnd-backup@pbs!node1@pbs.home.arpa:store1";
          description = "(pbs) `[[user@realm[!token]@]server[:port]:]datastore`.";
        };
        namespace = mkOption {
          type = nullOrStr;
          default = null;
          description = "(pbs) Namespace (`--ns`).";
        };
        fingerprint = mkOption {
          type = nullOrStr;
          default = null;
          description = "(pbs) SHA-256 fingerprint of the server certificate (`PBS_FINGERPRINT`), unless it is signed by a trusted CA.";
        };
        backupId = mkOption {
          type = types.str;
          default = "${config.networking.hostName or "chainstead"}-lnd";
          defaultText = literalExpression ''"''${networking.hostName}-lnd"'';
          description = "(pbs) Backup id (`--backup-id`); letters, digits, `-` and `_`.";
        };
        clientPackage = lib.mkPackageOption pkgs "proxmox-backup-client" { };
      };
    }
  );

  # A credential file: its systemd credential id and where the service and
  # the operator find it.
  cred = name: what: file: {
    id = "${name}-${what}";
    inherit file;
  };

  credentialsOf =
    name: t:
    let
      byKind = {
        directory = [ ];
        s3 = [
          (cred name "access-key-id" t.accessKeyIdFile)
          (cred name "secret-access-key" t.secretAccessKeyFile)
        ];
        webdav = [ (cred name "password" t.passwordFile) ];
        openbao =
          if t.tokenFile != null then
            [ (cred name "token" t.tokenFile) ]
          else
            [
              (cred name "role-id" t.roleIdFile)
              (cred name "secret-id" t.secretIdFile)
            ];
        pbs = [ (cred name "password" t.passwordFile) ];
      };
    in
    lib.filter (c: c.file != null) byKind.${t.kind};

  allCredentials = lib.concatLists (lib.mapAttrsToList credentialsOf cfg.targets);

  # `forService`: credentials by their systemd credential path; otherwise
  # the original files (for the operator's manifest).
  renderTarget =
    forService: name: t:
    let
      file = what: f: if f == null then null else if forService then "${credDir}/${name}-${what}" else f;
      base = {
        inherit name;
        inherit (t) kind encrypt;
      };
    in
    base
    // {
      directory = {
        inherit (t) path;
      };
      s3 = {
        inherit (t)
          endpoint
          bucket
          region
          prefix
          ;
        access_key_id_file = file "access-key-id" t.accessKeyIdFile;
        secret_access_key_file = file "secret-access-key" t.secretAccessKeyFile;
        allow_http = t.allowHttp;
      };
      webdav = {
        inherit (t) url user;
        password_file = file "password" t.passwordFile;
      };
      openbao = {
        inherit (t) address mount;
        ca_file = t.caFile;
        path = t.secretPath;
        kv_version = t.kvVersion;
        auth =
          if t.tokenFile != null then
            { token.token_file = file "token" t.tokenFile; }
          else
            {
              approle = {
                mount = t.approleMount;
                role_id_file = file "role-id" t.roleIdFile;
                secret_id_file = file "secret-id" t.secretIdFile;
              };
            };
      };
      pbs = {
        inherit (t) repository namespace fingerprint;
        password_file = file "password" t.passwordFile;
        backup_id = t.backupId;
        client_binary = lib.getExe t.clientPackage;
      };
    }
    .${t.kind};

  manifestFor =
    forService:
    {
      version = 1;
      channel_backup = cfg.channelBackupFile;
      state_dir = stateDir;
      metrics_dir = cfg.metricsDir;
      reconcile_interval_secs = cfg.reconcileInterval;
      retention = {
        keep_last = cfg.retention.keepLast;
        max_age_days = cfg.retention.maxAgeDays;
      };
      targets = lib.mapAttrsToList (renderTarget forService) cfg.targets;
    }
    // lib.optionalAttrs cfg.verifyWithLnd {
      lnd = {
        rest_url = "https://${chainstead.hostPort (chainstead.connectHost lnd.restAddress) lnd.restPort}";
        tls_cert_file = lnd.tlsCertFile;
        macaroon_file = "${lnd.macaroonDir}/readonly.macaroon";
      };
    }
    // lib.optionalAttrs (cfg.encryption.recipients != [ ]) {
      encryption = {
        inherit (cfg.encryption) recipients;
        # The service only encrypts; the identity is for the operator.
        identity_file = if forService then null else cfg.encryption.identityFile;
      };
    }
    // lib.optionalAttrs (cfg.snapshot.files != [ ]) {
      snapshot = {
        inherit (cfg.snapshot) files;
        interval_secs = cfg.snapshot.interval;
      };
    };

  # The build fails, not the boot, when a manifest is invalid.
  checked =
    name: value:
    chainstead.checkedManifest {
      inherit pkgs name value;
      inherit (cfg) package;
    };

  serviceManifest = checked "chainstead-backup" (manifestFor true);
  operatorManifest = checked "chainstead-backup-operator" (manifestFor false);

  # LND's directories from its data dir down to the network directory.
  lndDirs =
    let
      rel = lib.removePrefix "${lnd.dataDir}/" (dirOf cfg.channelBackupFile);
      parts = lib.filter (p: p != "") (lib.splitString "/" rel);
    in
    lib.genList (i: "${lnd.dataDir}/${lib.concatStringsSep "/" (lib.take (i + 1) parts)}") (
      lib.length parts
    );
  lndOwnsBackupDir =
    lib.hasPrefix "${lnd.dataDir}/" cfg.channelBackupFile && dirOf cfg.channelBackupFile != lnd.dataDir;

  readsLndDir = lnd.enable && lndOwnsBackupDir;

  # The setup units of the storage tiers that hold a directory target.
  tierSetups = lib.unique (
    lib.concatMap (
      t:
      lib.concatMap (
        tier:
        let
          root = config.services.chainstead.storage.${tier}.path;
        in
        lib.optional (
          t.kind == "directory" && t.path != null && root != null && lib.hasPrefix "${root}/" t.path
        ) "chainstead-storage-${tier}.service"
      ) [ "fast" "bulk" ]
    ) (lib.attrValues cfg.targets)
  );

  # Applied by the unit as root before it starts (after the mount), never by
  # systemd-tmpfiles-setup at boot, which would create them under an empty
  # mount point when the disk is missing. LND creates these 0700 itself;
  # created here first (same owner and mode) so the ACLs exist before LND's
  # first start. Traverse down to the network directory, read and list it
  # (inotify needs read access to the watched directory); never write.
  # `a+`, not the recursive `A+`, which would also grant on wallet.db and
  # the macaroon database. Each line sets the mask explicitly: the `d` line
  # chmods the directory, which turns the mask into the group bits (---),
  # and tmpfiles keeps an existing mask instead of recalculating it.
  # readonly.macaroon is world-readable (LND writes only admin.macaroon
  # 0640), so traversing the macaroon directory is all LND's verify needs;
  # the pusher stays out of the lnd-macaroon group, which reads admin.macaroon.
  lndAccessRules = pkgs.writeText "chainstead-backup-lnd-access.conf" (
    lib.concatStringsSep "\n" (
      map (d: "d ${d} 0700 lnd lnd - -") lndDirs
      ++ map (d: "a+ ${d} - - - - u:${user}:--x,m::--x") (lib.init lndDirs)
      ++ [ "a+ ${lib.last lndDirs} - - - - u:${user}:r-x,m::r-x" ]
      # The group keeps its r-x (ThunderHub); the pusher may only traverse.
      ++ lib.optional cfg.verifyWithLnd "a+ ${lnd.macaroonDir} - - - - u:${user}:--x,m::r-x"
    )
    + "\n"
  );

  required =
    name: t: field: kinds:
    {
      assertion = !(lib.elem t.kind kinds) || t.${field} != null;
      message = "services.chainstead.backup.targets.${name}.${field} must be set for a ${t.kind} target.";
    };
in
{
  options.services.chainstead.backup = {
    enable = mkEnableOption "chainstead-backup, which pushes LND's channel.backup to every target within a second of a change (unit `chainstead-backup.service`)";

    package = chainstead.toolPackageOption pkgs "chainstead-backup" ../pkgs/chainstead-tools/backup.nix;

    channelBackupFile = mkOption {
      type = types.str;
      default = lnd.backupFile;
      defaultText = literalExpression "config.services.chainstead.lnd.backupFile";
      description = "LND's channel.backup (`<lnd dir>/data/chain/bitcoin/<network>/channel.backup`).";
    };

    stateDir = mkOption {
      type = types.str;
      default = stateDir;
      readOnly = true;
      description = "Local versioned copies (`versions/`, restorable as target `local`) and `state.json`.";
    };

    metricsDir = mkOption {
      type = types.nullOr types.str;
      default = config.services.chainstead.syncGate.metricsDir;
      defaultText = literalExpression "config.services.chainstead.syncGate.metricsDir";
      description = "node_exporter's textfile directory for `chainstead-backup.prom`; null for none.";
    };

    reconcileInterval = mkOption {
      type = types.ints.between 1 3600;
      default = 60;
      description = "Seconds between full re-reads of channel.backup that catch anything inotify missed.";
    };

    verifyWithLnd = mkOption {
      type = types.bool;
      default = lnd.enable;
      defaultText = literalExpression "config.services.chainstead.lnd.enable";
      description = ''
        Ask LND (REST `POST /v1/channels/backup/verify`, read-only macaroon)
        to accept each new channel.backup before it is pushed. When LND
        cannot answer, the file is pushed anyway with a warning.
      '';
    };

    encryption = {
      recipients = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "age1z8r7svzhml7seq633vnkeaw2qhle0nnzwyc7snzyyuaqy0frn3fsd30m6d" ];
        description = "age X25519 public keys that targets with `encrypt = true` encrypt to (these end up in the store, which is fine: they are public).";
      };
      identityFile = secretFile ''
        The matching age identity, used only by `verify` and `restore` (the
        operator's manifest); the service never reads it. Keep a copy off
        the host: without it the encrypted copies cannot be read.
      '';
    };

    retention = {
      keepLast = mkOption {
        type = types.ints.positive;
        default = 100;
        description = "Versions kept per target at least (directory, S3, WebDAV); the newest is never deleted.";
      };
      maxAgeDays = mkOption {
        type = types.nullOr types.ints.positive;
        default = null;
        description = "Beyond {option}`keepLast`, versions older than this are deleted; null deletes everything beyond.";
      };
    };

    snapshot = {
      files = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "/var/lib/chainstead/wallet/xpubs.json" ];
        description = ''
          Small files packed into a NAR snapshot on start, every
          {option}`interval` seconds and a second after one changes; an
          unchanged set is not pushed again. They must be readable by the
          `chainstead-backup` user. Not encrypted unless the target has
          `encrypt = true`.
        '';
      };
      interval = mkOption {
        type = types.ints.positive;
        default = 3600;
        description = "Seconds between snapshots.";
      };
    };

    secrets = mkOption {
      type = types.attrsOf (
        types.submodule {
          options = {
            path = mkOption {
              type = types.str;
              example = "chainstead/backup/garage";
              description = "KV path in OpenBao (the secret loader's mount).";
            };
            field = mkOption {
              type = types.str;
              description = "Field holding the value.";
            };
          };
        }
      );
      default = { };
      example = literalExpression ''
        { garage-secret = { path = "chainstead/backup/garage"; field = "secret-access-key"; }; }
      '';
      description = ''
        Target credentials the secret loader fetches from OpenBao before the
        service starts, each into
        `/run/chainstead/secrets/backup/<name>` (mode 0400, owner
        `chainstead-backup`); point a target's `...File` option there.
      '';
    };

    targets = mkOption {
      type = types.attrsOf targetType;
      default = { };
      example = literalExpression ''
        {
          usb = { kind = "directory"; path = "/mnt/usb/lnd-backup"; };
          garage = {
            kind = "s3"; encrypt = true;
            endpoint = "https://s3.example.net"; bucket = "lnd"; region = "garage";
            accessKeyIdFile = "/run/chainstead/secrets/backup/garage-key-id";
            secretAccessKeyFile = "/run/chainstead/secrets/backup/garage-secret";
          };
        }
      '';
      description = "Where channel.backup goes, by name (letters, digits, `-`, `_`; not `local`).";
    };

    manifest = mkOption {
      type = types.package;
      default = serviceManifest;
      readOnly = true;
      description = "The service's manifest (checked when the system is built).";
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.targets != { };
        message = "services.chainstead.backup.targets is empty: configure at least one target (docs/backup.md).";
      }
      {
        assertion =
          !(lib.any (t: t.encrypt) (lib.attrValues cfg.targets)) || cfg.encryption.recipients != [ ];
        message = "services.chainstead.backup: a target has encrypt = true; set services.chainstead.backup.encryption.recipients.";
      }
      {
        assertion = lndOwnsBackupDir || !lnd.enable;
        message = "services.chainstead.backup.channelBackupFile (${cfg.channelBackupFile}) is outside services.chainstead.lnd.dataDir; the read-only access is granted for LND's directory only.";
      }
    ]
    ++ lib.concatLists (
      lib.mapAttrsToList (
        name: t:
        [
          (required name t "path" [ "directory" ])
          (required name t "endpoint" [ "s3" ])
          (required name t "bucket" [ "s3" ])
          (required name t "accessKeyIdFile" [ "s3" ])
          (required name t "secretAccessKeyFile" [ "s3" ])
          (required name t "url" [ "webdav" ])
          (required name t "user" [ "webdav" ])
          (required name t "passwordFile" [
            "webdav"
            "pbs"
          ])
          (required name t "address" [ "openbao" ])
          (required name t "repository" [ "pbs" ])
          {
            assertion = t.kind != "openbao" || t.tokenFile != null || (t.roleIdFile != null && t.secretIdFile != null);
            message = "services.chainstead.backup.targets.${name}: set tokenFile, or roleIdFile and secretIdFile (the secret loader's by default).";
          }
        ]
      ) cfg.targets
    );

    services.chainstead.secrets.services.backup = mkIf (cfg.secrets != { }) {
      owner = user;
      group = user;
      inherit unit;
      secrets = lib.mapAttrs (name: s: {
        inherit (s) path field;
        file = name;
      }) cfg.secrets;
    };

    users = {
      users.${user} = {
        isSystemUser = true;
        group = user;
        description = "chainstead backup pusher";
      };
      groups.${user} = { };
      groups.${metricsGroup} = { };
    };

    environment.systemPackages = [ cfg.package ];
    # For `status`, `verify` and `restore` as root (docs/backup.md).
    environment.etc."chainstead/backup.json".source = operatorManifest;
    system.build = {
      chainstead-backup-manifest = serviceManifest;
      chainstead-backup-operator-manifest = operatorManifest;
    }
    // lib.optionalAttrs readsLndDir { chainstead-backup-lnd-access = lndAccessRules; };

    # The pusher's unit waits for LND's storage tier like LND does
    # (RequiresMountsFor= on LND's directory, after the tier's setup).
    # mkIf around the attrset: inside, it would still create an empty `lnd` entry.
    services.chainstead.storage = {
      directories = mkIf readsLndDir { lnd.units = [ unit ]; };
      reservedPaths = [ stateDir ];
    };

    systemd.services.${unit} = {
      description = "Push LND's channel.backup to every backup target";
      wantedBy = [ "multi-user.target" ];
      # After LND so a stop of both stops the pusher last; not Requires=: the
      # last channel.backup stays worth pushing while LND is down.
      # time-sync: version names carry the time; a clock stepped backwards
      # after they were named would make a new copy look older.
      # A directory target on a storage tier: start after the tier's setup
      # (its mount and folders) so the target is writable, but only wanted:
      # a dead disk fails that target, never the others.
      after = [
        "network-online.target"
        "time-sync.target"
      ]
      ++ lib.optional lnd.enable "lnd.service"
      ++ tierSetups;
      wants = [
        "network-online.target"
        "time-sync.target"
      ]
      ++ tierSetups;
      restartTriggers = [ serviceManifest ];
      environment = {
        HOME = stateDir;
        # proxmox-backup-client keeps its ticket cache under XDG_RUNTIME_DIR.
        XDG_RUNTIME_DIR = "/run/${unit}";
      };

      serviceConfig = chainstead.hardening // {
        # exec
        ExecStartPre = lib.optional readsLndDir "+${pkgs.systemd}/bin/systemd-tmpfiles --create ${lndAccessRules}";
        ExecStart = "${lib.getExe cfg.package} watch --manifest ${serviceManifest}";
        Type = "notify";
        Restart = "always";
        RestartSec = "5s";
        TimeoutStopSec = "15s";

        # identity and paths
        User = user;
        Group = user;
        SupplementaryGroups = [ metricsGroup ];
        StateDirectory = "chainstead/backup";
        StateDirectoryMode = "0700";
        RuntimeDirectory = unit;
        RuntimeDirectoryMode = "0700";
        LoadCredential = map (c: "${c.id}:${c.file}") allCredentials;
        # LND's directory stays read-only (ProtectSystem=strict); directory
        # targets and the metrics directory are the only writable paths
        # outside the state directory ("-": a missing one is skipped).
        ReadWritePaths =
          lib.optional (cfg.metricsDir != null) "-${cfg.metricsDir}"
          ++ lib.mapAttrsToList (_: t: "-${t.path}") (
            lib.filterAttrs (_: t: t.kind == "directory" && t.path != null) cfg.targets
          );
        UMask = "0077"; # versions and state are for this user only
      };
    };
  };
}
