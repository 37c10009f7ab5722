# The names the backup module's files share: the service's user and unit,
# its state directory and where systemd puts its credentials.
rec {
  user = "chainstead-backup";
  unit = "chainstead-backup";
  stateDir = "/var/lib/chainstead/backup";
  credDir = "/run/credentials/${unit}.service";
  metricsGroup = "chainstead-metrics";
}
