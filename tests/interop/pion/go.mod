// Built in GOPATH mode against Debian's packaged sources (golang-github-pion-webrtc.v3-dev,
// golang-github-gorilla-websocket-dev): tests/interop/test_pion.py copies this folder into a GOPATH
// entry and runs `GO111MODULE=off GOPATH=<that>:/usr/share/gocode go build`. This file makes the folder
// "module-aware code" for Go's minimal module compatibility, which resolves github.com/pion/webrtc/v3 to
// the v3 sources Debian installs under github.com/pion/webrtc.
module ghosttalk/interop/pion

go 1.19
