# Looks for secret-looking values in an evaluated configuration or in the
# text a stub builder kept: inline values of secret-named keys, `password=` /
# `password:` assignments, PEM and age private keys, long hex strings and
# long random-looking tokens. Store paths are removed before the text rules
# run; option names (attribute names) are never reported by themselves;
# values that are paths, systemd specifiers or variable references are fine.
{ lib }:
let
  inherit (lib)
    any
    attrNames
    concatLists
    concatMap
    concatStringsSep
    filter
    hasPrefix
    imap0
    isAttrs
    isDerivation
    isFunction
    isList
    isString
    stringLength
    substring
    toLower
    ;

  matches = re: s: builtins.match re s != null;

  # The strings in `s` that match `re` (builtins.split puts them in lists).
  found = re: s: map builtins.head (filter isList (builtins.split "(${re})" s));

  storePath = "${builtins.storeDir}/[0-9a-z]{32}-[^/[:space:]\"'`,;:)}]*";
  withoutStorePaths = s: concatStringsSep " " (filter isString (builtins.split storePath s));

  redact =
    s:
    if stringLength s <= 4 then
      "«${toString (stringLength s)} chars»"
    else
      "${substring 0 4 s}… «${toString (stringLength s)} chars»";

  # Values that point at a secret instead of holding it.
  harmless =
    v:
    v == ""
    || builtins.elem (toLower v) [
      "-"
      "!"
      "*"
      "null"
      "none"
      "true"
      "false"
      "<redacted>"
    ]
    || any (p: hasPrefix p v) [
      "/"
      "%"
      "$"
      "<"
      "@"
      "{"
    ]
    || matches "[0-9]+[a-z]{0,3}" v;

  secretWords = lib.concatStringsSep "|" [
    "password"
    "passwd"
    "passphrase"
    "secret"
    "secretid"
    "secret_id"
    "token"
    "apikey"
    "api_key"
    "privatekey"
    "private_key"
    "rpcauth"
    "macaroon"
    "mnemonic"
    "seed"
  ];

  # key, optional quote, = or :, optional quote, value
  assignment =
    "(rpcpassword|rpcauth|${secretWords})[\"']?[[:space:]]*[=:][[:space:]]*[\"']?"
    + "([^[:space:]\"',;}]+)";

  textFindings =
    path: raw:
    let
      s = withoutStorePaths raw;
      finding = reason: value: {
        inherit path;
        reason = "${reason}: ${redact value}";
      };
      assigned = filter (m: !harmless (builtins.elemAt m 1)) (
        filter isList (builtins.split assignment (toLower s))
      );
      randomLooking = filter (
        t:
        matches ".*[a-z].*" t && matches ".*[A-Z].*" t && matches ".*[0-9].*" t && !hasPrefix "/" t
      ) (found "[A-Za-z0-9+/_=-]{32,}" s);
      # 64+ hex digits, except block hashes (they start with zeros).
      hex = filter (t: !hasPrefix "00000000" t) (found "[0-9a-fA-F]{64,}" s);
    in
    map (t: finding "private key block" t) (found "-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----" s)
    ++ map (t: finding "age secret key" t) (found "AGE-SECRET-KEY-1[0-9A-Z]{58}" s)
    ++ map (m: finding "inline ${builtins.head m}" (builtins.elemAt m 1)) assigned
    ++ map (finding "long hex string") hex
    ++ map (finding "random-looking token") randomLooking;

  secretKey = key: matches ".*(${secretWords})s?" (toLower key);

  keyFindings =
    path: key: value:
    let
      strings =
        if isString value then
          [ value ]
        else if isList value then
          filter isString value
        else
          [ ];
    in
    map (v: {
      inherit path;
      reason = "secret-named `${key}' holds an inline value: ${redact v}";
    }) (filter (v: !harmless v) (if secretKey key then strings else [ ]));

  # Attributes of a (stub) derivation that are not content.
  derivationPlumbing = [
    "type"
    "name"
    "pname"
    "version"
    "outPath"
    "drvPath"
    "outputName"
    "outputs"
    "out"
    "all"
    "meta"
    "overrideAttrs"
    "override"
    "passAsFile"
  ];

  walk =
    scrub: depth: path: value:
    let
      at = name: if path == "" then name else "${path}.${name}";
      # Options without a value (startLimitBurst, say) throw when read, in
      # NixOS too; they hold nothing to scan.
      attrs =
        names:
        concatMap (
          name:
          let
            read = builtins.tryEval value.${name};
            v = read.value;
          in
          if !read.success then
            [ ]
          else
            keyFindings (at name) name (if isList v then map scrub v else scrub v)
            ++ walk scrub (depth + 1) (at name) v
        ) names;
    in
    if depth > 40 || isFunction value then
      [ ]
    else if isDerivation value then
      attrs (filter (n: !builtins.elem n derivationPlumbing) (attrNames value))
    else if isAttrs value then
      attrs (filter (n: n != "_module") (attrNames value))
    else if isList value then
      concatLists (imap0 (i: walk scrub (depth + 1) "${path}[${toString i}]") value)
    else if isString value then
      textFindings path (scrub value)
    else
      [ ];
in
{
  # findings { value; allow ? [ ]; } -> [ { path; reason; } ]
  # `allow` lists exact strings that are known not to be secrets (a public
  # test vector, say); they are removed from every string before scanning.
  findings =
    {
      value,
      allow ? [ ],
    }:
    let
      scrub = v: if isString v then lib.replaceStrings allow (map (_: "") allow) v else v;
    in
    walk scrub 0 "" value;
}
