// Command chart turns the raw output of tests/bench/bench.sh into the
// benchmark results: results.json, results.md and results.png (a bar chart
// per figure) under -out, and the committed summary tests/bench/RESULTS.md.
//
//	chart -raw tests/bench/results/raw -out tests/bench/results -results-md tests/bench/RESULTS.md
//
// With -dns DIR it summarizes only what tests/bench/dns.sh wrote in DIR:
// DIR/summary.json and DIR/summary.md, and the table on standard output.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func run() error {
	raw := flag.String("raw", "tests/bench/results/raw", "raw directory written by bench.sh")
	out := flag.String("out", "tests/bench/results", "output directory")
	repo := flag.String("results-md", "", "also write this Markdown summary (tests/bench/RESULTS.md)")
	dnsOnly := flag.String("dns", "", "summarize only the DNS runs in this directory")
	flag.Parse()
	if *dnsOnly != "" {
		return dnsAlone(*dnsOnly)
	}
	s, err := summarize(*raw)
	if err != nil {
		return err
	}
	js, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(*out, "results.json"), append(js, '\n')); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(*out, "results.md"), []byte(resultsMarkdown(s))); err != nil {
		return err
	}
	if err := writeChart(s, filepath.Join(*out, "results.png")); err != nil {
		return err
	}
	if *repo != "" {
		if err := writeFile(*repo, []byte(repoMarkdown(s))); err != nil {
			return err
		}
	}
	for _, p := range s.Problems {
		fmt.Fprintln(os.Stderr, "chart: problem:", p)
	}
	return nil
}

func dnsAlone(dir string) error {
	d, err := summarizeDNS(dir)
	if err != nil {
		return err
	}
	if d == nil {
		return fmt.Errorf("%s/meta.env: missing or empty", dir)
	}
	js, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, "summary.json"), append(js, '\n')); err != nil {
		return err
	}
	md := dnsMarkdown(d, "##")
	if err := writeFile(filepath.Join(dir, "summary.md"), []byte(md)); err != nil {
		return err
	}
	fmt.Print(md)
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "chart:", err)
		os.Exit(1)
	}
}
