package config

import "os"

// ServiceDefinitionsFromFile reads the service and services blocks of one
// config file (format by extension, .json or .hcl; JSON otherwise), for
// `cairn services register FILE`. The definitions are returned raw (file
// key spellings, normalised like RuntimeConfig.Services). Other keys must
// be valid agent config keys but are ignored.
func ServiceDefinitionsFromFile(path string) ([]map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{Source: path, Msg: errMsg(err), Err: ErrValue}
	}
	format := formatOf(path)
	if format == "" {
		format = FormatJSON
	}
	m, err := parseSource(path, format, data)
	if err != nil {
		return nil, err
	}
	var warnings []string
	rc := &RuntimeConfig{}
	d := &decoder{src: path, rc: rc, warnings: &warnings, set: map[string]bool{}}
	if err := d.object("", m); err != nil {
		return nil, err
	}
	return rc.Services, nil
}
