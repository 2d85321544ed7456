package org.elasticsearch.plugins;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.elasticsearch.common.settings.Settings;

/**
 * Plugins instantiated from classes on the classpath (the way Elasticsearch's own test framework
 * does it), instead of plugin bundles unpacked under modules/ and plugins/. Lives in this package
 * to reach the package-private LoadedPlugin record and loadPlugin().
 */
public class ClasspathPluginsService extends PluginsService {
    private final List<LoadedPlugin> loaded;

    public ClasspathPluginsService(Settings settings, Path configPath, Collection<Class<? extends Plugin>> classes) {
        super(settings, configPath, emptyLoader());
        List<LoadedPlugin> out = new ArrayList<>();
        for (Class<? extends Plugin> cls : classes) {
            Plugin plugin = loadPlugin(cls, settings, configPath);
            PluginDescriptor descriptor = new PluginDescriptor(
                cls.getName(), "classpath plugin", "NA", "8.19.21",
                Integer.toString(Runtime.version().feature()), cls.getName(), null,
                List.of(), false, false, false, false);
            out.add(new LoadedPlugin(descriptor, plugin, cls.getClassLoader()));
        }
        loaded = List.copyOf(out);
    }

    public static PluginsLoader emptyLoader() {
        // the public factory wants the server as a named module; on the classpath it is not
        return new PluginsLoader(Set.of(), Set.of(), Map.of());
    }

    @Override
    protected List<LoadedPlugin> plugins() {
        return loaded;
    }
}
