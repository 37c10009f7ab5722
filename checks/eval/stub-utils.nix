# The part of nixpkgs nixos/lib/utils.nix (the `utils` module argument) the
# chainstead modules may use: escapeSystemdPath, as in systemd-escape --path.
{ lib }:
let
  escapeSystemdString =
    s:
    let
      escaped = lib.strings.escapeC (lib.stringToCharacters " !\"#$%&'()*+,;<=>=@[\\]^`{|}~-") s;
      leadingDot =
        if lib.hasPrefix "." escaped then
          lib.strings.escapeC [ "." ] "." + lib.removePrefix "." escaped
        else
          escaped;
    in
    lib.replaceStrings [ "/" ] [ "-" ] leadingDot;
in
{
  escapeSystemdPath =
    s:
    let
      normal = lib.strings.normalizePath s;
    in
    escapeSystemdString (
      if normal == "/" then normal else lib.removeSuffix "/" (lib.removePrefix "/" normal)
    );
}
