// Package deploy holds no Go code: it is the directory of Rebound's
// deployment files (rebound.service, rebound.default;
// README.md says how to install them), and its tests check them with
// systemd-analyze verify.
package deploy
