from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name='Feature',
            fields=[
                ('id', models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(db_index=True, help_text='Required. Used in templates (eg {% feature search %}) and URL parameters.', max_length=40, unique=True)),
                ('description', models.TextField(blank=True, max_length=400)),
                ('enabled', models.BooleanField(default=False)),
            ],
            options={
                'ordering': ['name'],
                'permissions': (('can_flip_with_url', 'Can flip features using URL parameters'),),
            },
        ),
    ]
