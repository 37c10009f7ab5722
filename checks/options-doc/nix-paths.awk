# The full attribute paths that ```nix blocks of Markdown files set, one
# "FILE:LINE:PATH" a line, so checks/options-doc/run --refs also sees
# `services.chainstead.lnd = { dataDir = ...; };` as services.chainstead.lnd.dataDir.
# A heuristic over the text, not a Nix parser: string contents and comments
# are dropped; `path = {` opens a level named path, any other `{` (a list
# element, a function's arguments) a level that starts paths afresh; `}`
# closes the innermost level. Usage: awk -f nix-paths.awk FILE...
function emit(path,    i, full) {
  full = ""
  for (i = depth; i >= 1; i--) {
    if (name[i] == "") break
    full = name[i] "." full
  }
  full = full path
  if (full ~ /^services\.chainstead\./) print FILENAME ":" FNR ":" full
}
FNR == 1 { inblock = 0; depth = 0 }
/^[ \t]*```/ {
  if (inblock) { inblock = 0; depth = 0 } else if ($0 ~ /^[ \t]*```nix[ \t]*$/) inblock = 1
  next
}
!inblock { next }
{
  line = $0
  # Quoted attribute names keep their text; other strings are emptied.
  while (match(line, /"[A-Za-z0-9_-]+"[ \t]*(=|\.)/)) {
    tok = substr(line, RSTART, RLENGTH)
    gsub(/"/, "", tok)
    line = substr(line, 1, RSTART - 1) tok substr(line, RSTART + RLENGTH)
  }
  gsub(/"([^"\\]|\\.)*"/, "\"\"", line)
  gsub(/''.*''/, "\"\"", line)
  sub(/#.*/, "", line)
  while (line != "") {
    if (match(line, /^[ \t]+/)) {
      line = substr(line, RLENGTH + 1)
    } else if (match(line, /^[A-Za-z_][A-Za-z0-9_'-]*(\.[A-Za-z_][A-Za-z0-9_'-]*)*[ \t]*=[ \t]*\{/)) {
      tok = substr(line, 1, RLENGTH)
      sub(/[ \t]*=.*/, "", tok)
      emit(tok)
      name[++depth] = tok
      line = substr(line, RLENGTH + 1)
    } else if (match(line, /^[A-Za-z_][A-Za-z0-9_'-]*(\.[A-Za-z_][A-Za-z0-9_'-]*)*[ \t]*=[^=]/)) {
      tok = substr(line, 1, RLENGTH)
      sub(/[ \t]*=.*/, "", tok)
      emit(tok)
      line = substr(line, RLENGTH)
    } else if (substr(line, 1, 1) == "{") {
      name[++depth] = ""
      line = substr(line, 2)
    } else if (substr(line, 1, 1) == "}") {
      if (depth > 0) depth--
      line = substr(line, 2)
    } else if (match(line, /^[^{}A-Za-z_ \t]+|^[A-Za-z_][A-Za-z0-9_'.-]*/)) {
      line = substr(line, RLENGTH + 1)
    } else {
      line = substr(line, 2)
    }
  }
}
