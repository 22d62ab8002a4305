// Command healthcheck prints, for each Kubernetes object it reads, the health Argo CD gives it with a custom Lua
// health script and the status kstatus computes for it, so tests can check both against objects a real operator
// wrote.
//
// Usage: healthcheck -lua GROUP/KIND=FILE [-lua ...] < objects
//
// It reads a stream of JSON objects on stdin and writes one JSON line per object:
//
//	{"argocd": {"status": "Healthy", "message": "..."}, "kstatus": {"status": "Current", "message": "..."}}
//
// where either side may be {"error": "..."} instead, and "argocd" is null when no script names the object's kind.
//
// Argo CD's side runs the script the way Argo CD's controller runs a health customization from argocd-cm:
// gopher-lua (Lua 5.1) with only the base, table and package libraries opened (no string or math library unless
// an operator enables useOpenLibs; Argo CD adds a restricted os library that these scripts do not use), the
// object as the global table `obj` with every number a Lua number, one second to finish, and the returned table's
// status one of Argo CD's health codes (any other status becomes Unknown, as in Argo CD).
// kstatus's side is sigs.k8s.io/cli-utils' own status.Compute, the code Flux, kubectl's apply and cli-utils run.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// verdict is one side's answer: a status and message, or the error that prevented one.
type verdict struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

type answer struct {
	ArgoCD  *verdict `json:"argocd"`
	KStatus verdict  `json:"kstatus"`
}

// Argo CD's health codes; a script returning anything else is reported as Unknown.
var healthCodes = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true, "Suspended": true, "Missing": true, "Unknown": true,
}

type scripts map[string]string

func (s scripts) String() string { return fmt.Sprint(map[string]string(s)) }

func (s scripts) Set(value string) error {
	key, path, found := strings.Cut(value, "=")
	if !found || !strings.Contains(key, "/") {
		return fmt.Errorf("-lua wants GROUP/KIND=FILE, not %q", value)
	}
	text, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s[key] = string(text)
	return nil
}

// toLua turns a decoded JSON value into the Lua value Argo CD gives a script.
func toLua(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case map[string]any:
		table := l.CreateTable(0, len(v))
		for key, item := range v {
			table.RawSetString(key, toLua(l, item))
		}
		return table
	case []any:
		table := l.CreateTable(len(v), 0)
		for _, item := range v {
			table.Append(toLua(l, item))
		}
		return table
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	}
	return lua.LNil
}

func argoHealth(script string, object map[string]any) verdict {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for name, open := range map[string]lua.LGFunction{
		lua.LoadLibName: lua.OpenPackage, lua.BaseLibName: lua.OpenBase, lua.TabLibName: lua.OpenTable,
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(open), Protect: true}, lua.LString(name)); err != nil {
			return verdict{Error: err.Error()}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, object))
	if err := l.DoString(script); err != nil {
		return verdict{Error: err.Error()}
	}
	table, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return verdict{Error: fmt.Sprintf("the script returned a %s, not a table", l.Get(-1).Type())}
	}
	found := verdict{}
	for field, into := range map[string]*string{"status": &found.Status, "message": &found.Message} {
		switch value := table.RawGetString(field).(type) {
		case lua.LString:
			*into = string(value)
		case *lua.LNilType:
		default:
			return verdict{Error: fmt.Sprintf("the script's %s is a %s, not a string", field, value.Type())}
		}
	}
	if !healthCodes[found.Status] {
		return verdict{Status: "Unknown", Message: "Lua returned an invalid health status"}
	}
	return found
}

func kstatusOf(object *unstructured.Unstructured) verdict {
	result, err := status.Compute(object)
	if err != nil {
		return verdict{Error: err.Error()}
	}
	return verdict{Status: result.Status.String(), Message: result.Message}
}

func run(in io.Reader, out io.Writer, byKind scripts) error {
	decoder := json.NewDecoder(in)
	encoder := json.NewEncoder(out)
	for {
		var raw json.RawMessage
		if err := decoder.Decode(&raw); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("reading an object: %w", err)
		}
		object := &unstructured.Unstructured{}
		if err := object.UnmarshalJSON(raw); err != nil {
			return fmt.Errorf("reading an object: %w", err)
		}
		found := answer{KStatus: kstatusOf(object)}
		gvk := object.GroupVersionKind()
		if script, ok := byKind[gvk.Group+"/"+gvk.Kind]; ok {
			health := argoHealth(script, object.Object)
			found.ArgoCD = &health
		}
		if err := encoder.Encode(found); err != nil {
			return err
		}
	}
}

func main() {
	byKind := scripts{}
	flag.Var(byKind, "lua", "GROUP/KIND=FILE: Argo CD's health script for that kind (repeatable)")
	flag.Parse()
	if err := run(os.Stdin, os.Stdout, byKind); err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		os.Exit(1)
	}
}
