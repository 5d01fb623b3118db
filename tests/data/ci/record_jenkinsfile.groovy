// Runs a Jenkinsfile under Groovy 2.4 (the version Jenkins embeds) with every pipeline step
// and directive recorded instead of executed, and prints the call tree as JSON: what the
// tests check offline about pipelines/ci/Jenkinsfile. Usage: groovy THIS_FILE Jenkinsfile
import groovy.json.JsonOutput

class Recorder {
    List calls = []

    def methodMissing(String name, Object args) {
        def list = args as List
        def node = [name: name,
                    args: list.findAll { !(it instanceof Closure) }.collect { describe(it) },
                    children: []]
        // A call used as an argument (logRotator(...) in buildDiscarder(...)) is not a step.
        list.flatten().each { arg -> calls.removeAll { it.is(arg) } }
        calls << node
        def body = list.find { it instanceof Closure }
        if (body != null) {
            def inner = new Recorder()
            body.delegate = inner
            body.resolveStrategy = Closure.DELEGATE_FIRST
            body.call()
            node.children = inner.calls
        }
        return node
    }

    def propertyMissing(String name, Object value) {
        calls << [name: "=" + name, args: [describe(value)], children: []]
    }

    def propertyMissing(String name) {
        return name
    }

    static describe(Object value) {
        if (value instanceof Map && value.containsKey('children')) {
            return [call: value.name, args: value.args]
        }
        if (value instanceof Map) {
            return value.collectEntries { k, v -> [k.toString(), describe(v)] }
        }
        if (value instanceof List) {
            return value.collect { describe(it) }
        }
        return [type: value.getClass().simpleName, value: value.toString()]
    }
}

def script = new GroovyShell().parse(new File(args[0]))
def recorder = new Recorder()
script.metaClass.methodMissing = { String name, Object a -> recorder.methodMissing(name, a) }
script.run()
println JsonOutput.toJson(recorder.calls)
