// Package config is the schema of bih-nfq's YAML configuration file, with
// strict decoding (an unknown key is an error naming it and its line),
// validation errors that name the offending key, and the defaults, which are
// all set in Default.
//
// The file has one top-level section per concern. A new section (dns, ...)
// is a field of Config: a struct with yaml tags, a default in Default and
// checks in Validate. Decoding needs no change: it follows the yaml tags.
package config

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration file.
type Config struct {
	// Mode is host (this machine's programs, RFC 6535), router (the IPv4
	// hosts behind the LAN links) or host+router (router.go).
	Mode string `yaml:"mode"`
	// Translation configures the RFC 7915 translator.
	Translation Translation `yaml:"translation"`
	// Pool, Host, NFT, Queue and Daemon configure `bih-nfq run`
	// (daemon.go).
	Pool   Pool   `yaml:"pool"`
	Host   Host   `yaml:"host"`
	NFT    NFT    `yaml:"nft"`
	Queue  Queue  `yaml:"queue"`
	Daemon Daemon `yaml:"daemon"`
	// DNS configures the Extension Name Resolver (dns.go).
	DNS DNS `yaml:"dns"`
	// Router configures router mode (router.go).
	Router Router `yaml:"router"`
}

// Default returns the configuration used for every key the file leaves out.
// It is the one place defaults are gathered; docs/replay.md lists the
// translation ones.
func Default() Config {
	return Config{
		Mode: RunHost,
		Translation: Translation{
			Mode:            ModeHost,
			LowestIPv6MTU:   1280, // RFC 8200 §5 minimum link MTU
			IPv6MTU:         1500,
			IPv4MTU:         1500,
			UDPZeroChecksum: UDPZeroCompute,
		},
		Pool:   defaultPool(),
		Host:   defaultHost(),
		NFT:    defaultNFT(),
		Queue:  defaultQueue(),
		Daemon: defaultDaemon(),
		DNS:    defaultDNS(),
		Router: defaultRouter(),
	}
}

// KeyError is a problem with one configuration key. Key is the dotted path
// ("translation.pref64", "translation.map[1]"); File and Line are set when
// the value came from a file.
type KeyError struct {
	File string
	Line int
	Key  string
	Err  error
}

func (e *KeyError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *KeyError) Unwrap() error { return e.Err }

func keyErr(key string, format string, args ...any) *KeyError {
	return &KeyError{Key: key, Err: fmt.Errorf(format, args...)}
}

// Load reads and parses the configuration file at path.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes a configuration file over Default and validates it. name is
// used in error messages. An empty file gives the defaults.
func Parse(name string, data []byte) (Config, error) {
	c := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return c, nil
		}
		return Config{}, fmt.Errorf("%s: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("%s: more than one YAML document", name)
	}
	lines := make(map[string]int)
	if len(doc.Content) == 1 {
		if err := decode(doc.Content[0], reflect.ValueOf(&c).Elem(), "", lines); err != nil {
			err.File = name
			return Config{}, err
		}
	}
	if err := c.Validate(); err != nil {
		var ke *KeyError
		if errors.As(err, &ke) {
			ke.File, ke.Line = name, lines[ke.Key]
		}
		return Config{}, err
	}
	return c, nil
}

// decode sets v from node n, following yaml tags. Unlike yaml's own decoder
// it reports the key path of every error, refuses unknown keys, and leaves
// the default in place for an empty (null) value. lines records the line of
// each key's value, for validation errors.
func decode(n *yaml.Node, v reflect.Value, path string, lines map[string]int) *KeyError {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if path != "" {
		lines[path] = n.Line
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if _, text := v.Addr().Interface().(encoding.TextUnmarshaler); v.Kind() == reflect.Struct && !text {
		if n.Kind != yaml.MappingNode {
			return &KeyError{Line: n.Line, Key: keyOrRoot(path), Err: errors.New("want a mapping of keys")}
		}
		fields, names := yamlFields(v.Type())
		seen := make(map[string]int)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			key := joinKey(path, k.Value)
			f, ok := fields[k.Value]
			if !ok {
				return &KeyError{Line: k.Line, Key: key,
					Err: fmt.Errorf("unknown key (known here: %s)", strings.Join(names, ", "))}
			}
			// Decoding into a Node keeps duplicates; the later one would win silently.
			if first, dup := seen[k.Value]; dup {
				return &KeyError{Line: k.Line, Key: key, Err: fmt.Errorf("duplicate key (first set at line %d)", first)}
			}
			seen[k.Value] = k.Line
			if err := decode(val, v.Field(f), key, lines); err != nil {
				return err
			}
			lines[key] = k.Line // the key's own line reads best for whole-value errors
		}
		return nil
	}
	if n.Kind == yaml.SequenceNode && v.Kind() == reflect.Slice {
		for i, item := range n.Content {
			lines[fmt.Sprintf("%s[%d]", path, i)] = item.Line
		}
	}
	if err := n.Decode(v.Addr().Interface()); err != nil {
		got := n.Value
		if n.Kind != yaml.ScalarNode {
			got = map[yaml.Kind]string{yaml.SequenceNode: "a list", yaml.MappingNode: "a mapping"}[n.Kind]
		} else {
			got = strconv.Quote(got)
		}
		return &KeyError{Line: n.Line, Key: path, Err: fmt.Errorf("want %s, got %s", kindName(v.Type()), got)}
	}
	return nil
}

func keyOrRoot(path string) string {
	if path == "" {
		return "(top level)"
	}
	return path
}

func joinKey(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// yamlFields maps yaml key names to field indices of struct type t.
func yamlFields(t reflect.Type) (map[string]int, []string) {
	m := make(map[string]int)
	var names []string
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		m[name] = i
		names = append(names, name)
	}
	return m, names
}

func kindName(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[netip.Addr]():
		return "an IP address"
	case reflect.TypeFor[netip.Prefix]():
		return "an IP prefix"
	case reflect.TypeFor[time.Duration]():
		return "a duration (such as 90s or 10m)"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		e := kindName(t.Elem())
		if _, noun, ok := strings.Cut(e, " "); ok && (strings.HasPrefix(e, "a ") || strings.HasPrefix(e, "an ")) {
			e = noun + "s"
		}
		return "a list of " + e
	}
	return t.String()
}

// Validate checks every section and returns the first problem as a
// *KeyError.
func (c *Config) Validate() error {
	for _, v := range []func() error{
		c.Translation.validate,
		c.Pool.validate,
		c.Host.validate,
		c.NFT.validate,
		c.Queue.validate,
		c.Daemon.validate,
		c.DNS.validate,
		c.validateMode,
	} {
		if err := v(); err != nil {
			return err
		}
	}
	return nil
}
