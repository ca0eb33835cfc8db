// Command labserver is the lab's web server: it serves deterministic bodies of
// any size so tests can check a download's sha256 without shipping files.
//
//	GET /bytes/N   N bytes of a fixed pseudo-random stream (seeded by N)
//	GET /sha256/N  the hex sha256 of /bytes/N
//	GET /          "hello from the IPv6-only server\n"
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxBytes bounds what one request may ask for.
const maxBytes = 1 << 30

// stream is the deterministic body of /bytes/N.
func stream(n int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8(seed(n)), n)
}

func seed(n int64) [32]byte {
	var s [32]byte
	copy(s[:], "bih-nfq lab "+strconv.FormatInt(n, 10))
	return s
}

func size(w http.ResponseWriter, r *http.Request, prefix string) (int64, bool) {
	n, err := strconv.ParseInt(strings.TrimPrefix(r.URL.Path, prefix), 10, 64)
	if err != nil || n < 0 || n > maxBytes {
		http.Error(w, "bad size", http.StatusBadRequest)
		return 0, false
	}
	return n, true
}

func main() {
	listen := flag.String("listen", "[::]:80", "address to listen on")
	flag.Parse()
	mux := http.NewServeMux()
	mux.HandleFunc("/bytes/", func(w http.ResponseWriter, r *http.Request) {
		n, ok := size(w, r, "/bytes/")
		if !ok {
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		w.Header().Set("Content-Type", "application/octet-stream")
		io.Copy(w, stream(n))
	})
	mux.HandleFunc("/sha256/", func(w http.ResponseWriter, r *http.Request) {
		n, ok := size(w, r, "/sha256/")
		if !ok {
			return
		}
		h := sha256.New()
		io.Copy(h, stream(n))
		fmt.Fprintln(w, hex.EncodeToString(h.Sum(nil)))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from the IPv6-only server; you came from %s\n", r.RemoteAddr)
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.Serve(ln))
}
