// Package deploy holds no Go code: it is the directory of Rebound's
// deployment files (rebound.service, rebound.default, the Grafana
// dashboard grafana-dashboard.json; README.md says how to install them),
// and its tests check them: the unit with systemd-analyze verify, the
// dashboard by finding every metric it queries on a running server.
package deploy
