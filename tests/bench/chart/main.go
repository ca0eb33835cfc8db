// Command chart turns the raw output of tests/bench/bench.sh into the
// benchmark results: results.json, results.md and results.png (a bar chart
// per figure) under -out, and the committed summary tests/bench/RESULTS.md.
//
//	chart -raw tests/bench/results/raw -out tests/bench/results -results-md tests/bench/RESULTS.md
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
	flag.Parse()
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

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "chart:", err)
		os.Exit(1)
	}
}
